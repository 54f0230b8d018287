"""Writes a synthetic COCO-format dataset (json + JPEG images) that the ordinary COCO converter reads.

:func:`generate` layout: ``<out>/annotations/person_keypoints_<split>.json`` and
``<out>/<split>/<image_id:012d>.jpg``. The json is written last and atomically, so a killed run leaves no annotation
file pointing at missing images. Each split has its own seed stream, so train and val never share an image.

:func:`prepare` generates and converts (with the COCO converter, as for real data) in one call, and does nothing
when the sets are already there: the demo and the synthetic benchmark call it before training.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import multiprocessing
import os
from typing import Mapping, Sequence

import numpy as np
import tensorflow as tf

from semipose_tf import atomic
from semipose_tf.console import Progress
from semipose_tf.conversion import convert, sources
from semipose_tf.data import records
from semipose_tf.keypoints import COCO17
from semipose_tf.synthetic import render

_SPLIT_IDS = {"train": 1, "val": 2, "test": 3}


def _render(args):
  seed, split_id, index, config = args
  return render.render_image((seed, split_id, index), config)


def generate(
  out_dir: str,
  splits: Mapping[str, int],
  seed: int = 0,
  config: render.SyntheticConfig = render.SyntheticConfig(),
  workers: int | None = None,
  verbose: bool = True,
) -> dict[str, str]:
  """Renders and writes the splits; returns the annotation file of each split.

  Args:
    out_dir: Dataset root.
    splits: Images per split, e.g. ``{"train": 2000, "val": 200}``.
    seed: Base seed; image i of split s is ``render_image((seed, split_id(s), i))``.
    config: What to render.
    workers: Rendering processes (default: the cores); 1 renders in this process.
    verbose: Progress bar.
  """
  workers = workers or os.cpu_count() or 1
  out = {}
  for split, num_images in splits.items():
    split_id = _SPLIT_IDS.get(split, 10 + sum(map(ord, split)))
    image_dir = os.path.join(out_dir, split)
    ann_dir = os.path.join(out_dir, "annotations")
    os.makedirs(image_dir, exist_ok=True)
    os.makedirs(ann_dir, exist_ok=True)
    jobs = [(seed, split_id, i, config) for i in range(num_images)]
    images, annotations = [], []
    progbar = Progress(num_images, "image") if verbose else None
    if verbose:
      print(f"Rendering {num_images} synthetic {split} images into {image_dir}")
    if workers > 1 and num_images >= 64:
      # Spawned workers import only numpy code (render.py), not TensorFlow.
      ctx = multiprocessing.get_context("spawn")
      pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=ctx)
      results = pool.map(_render, jobs, chunksize=16)
    else:
      pool = None
      results = map(_render, jobs)
    try:
      for i, (image, anns) in enumerate(results):
        image_id = i + 1
        name = f"{image_id:012d}.jpg"
        path = os.path.join(image_dir, name)
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
          f.write(tf.io.encode_jpeg(image, quality=92).numpy())
        os.replace(tmp, path)
        h, w = image.shape[:2]
        images.append({"id": image_id, "file_name": name, "width": int(w), "height": int(h)})
        for a in anns:
          kps = np.asarray(a["keypoints"], np.float32)
          kps[:, :2] = np.round(kps[:, :2], 2)
          annotations.append(
            {
              "id": len(annotations) + 1,
              "image_id": image_id,
              "category_id": 1,
              "iscrowd": 0,
              "bbox": [round(v, 2) for v in a["bbox"]],
              "area": a["area"],
              "keypoints": [float(v) if k % 3 < 2 else int(v) for k, v in enumerate(kps.ravel())],
              "num_keypoints": int((kps[:, 2] > 0).sum()),
              "hard": a["hard"],
              "difficulty": a["difficulty"],
            }
          )
        if progbar is not None:
          progbar.update(i + 1)
    finally:
      if pool is not None:
        pool.shutdown()
    data = {
      "info": {
        "description": "semipose_tf synthetic people",
        "seed": seed,
        "split": split,
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in config.__dict__.items()},
      },
      "licenses": [],
      "images": images,
      "annotations": annotations,
      "categories": render.coco_categories(),
    }
    ann_file = os.path.join(ann_dir, f"person_keypoints_{split}.json")
    atomic.write_json(ann_file, data)
    out[split] = ann_file
    if verbose:
      hard = sum(a["hard"] for a in annotations)
      print(f"  {len(images)} images, {len(annotations)} people ({hard} hard) -> {ann_file}")
  return out


def labeled_dir_name(num_labeled: int | None) -> str:
  """The folder (under a :func:`prepare` root) of a label budget: ``labeled_300``, or ``labeled_all``."""
  return "labeled_all" if num_labeled is None else f"labeled_{int(num_labeled)}"


def prepare(
  data_root: str,
  train_images: int = 1000,
  val_images: int = 100,
  num_labeled: Sequence[int | None] = (200,),
  seed: int = 0,
  image_size: Sequence[int] = (240, 320),
  hard_prob: float = 0.25,
  max_people: int = 3,
  clutter: int = 14,
  occluder_prob: float = 0.35,
  workers: int | None = None,
  verbose: bool = True,
) -> dict[str, str]:
  """Generates a synthetic dataset and converts it to TFRecord sets, unless that was done before.

  Layout under ``data_root``::

    raw/annotations/person_keypoints_{train,val}.json, raw/train/*.jpg, raw/val/*.jpg   (COCO format)
    train/unlabeled/             every train person (labels ignored by the pipeline)
    labeled_<N>/labeled          the first N train persons with labels (``labeled_all``: every one)
    val/eval                     every val person with its ground-truth box (COCO AP)

  ``raw/synthetic.json`` records the arguments; calling again with different ones is an error rather than
  silently training on the old data.

  Args:
    data_root: Output folder.
    train_images, val_images: Images to render per split (about 2 people per image).
    num_labeled: Label budgets to convert (None: all train persons, the fully supervised upper bound).
    seed: Generator seed.
    image_size, hard_prob, max_people, clutter, occluder_prob: See
      :class:`~semipose_tf.synthetic.render.SyntheticConfig`.
    workers: Rendering processes and conversion threads (default: the cores).
    verbose: Progress bars.

  Returns:
    The set directories by name: ``unlabeled``, ``eval`` and ``labeled_<N>`` / ``labeled_all``.
  """
  config = render.SyntheticConfig(
    image_size=tuple(int(v) for v in image_size),
    max_people=int(max_people),
    hard_prob=float(hard_prob),
    clutter=int(clutter),
    occluder_prob=float(occluder_prob),
  )
  params = {
    "train_images": int(train_images),
    "val_images": int(val_images),
    "seed": int(seed),
    "config": {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()},
  }
  raw = os.path.join(data_root, "raw")
  stamp = os.path.join(raw, "synthetic.json")
  if os.path.exists(stamp):
    with open(stamp) as f:
      old = json.load(f)
    if old != params:
      raise ValueError(
        f"{data_root} holds synthetic data made with {old}, not {params}; delete the folder or choose another data root"
      )
  sets = {"unlabeled": os.path.join(data_root, "train", "unlabeled"), "eval": os.path.join(data_root, "val", "eval")}
  for n in num_labeled:
    sets[labeled_dir_name(n)] = os.path.join(data_root, labeled_dir_name(n), "labeled")

  def complete(path: str) -> bool:
    try:
      records.read_manifest(path)
      return True
    except records.IncompleteSetError:
      return False

  if all(complete(p) for p in sets.values()):
    return sets
  ann = {s: os.path.join(raw, "annotations", f"person_keypoints_{s}.json") for s in ("train", "val")}
  if not (os.path.exists(stamp) and all(os.path.exists(a) for a in ann.values())):
    generate(raw, {"train": int(train_images), "val": int(val_images)}, seed, config, workers, verbose)
    atomic.write_json(stamp, params)
  train_src = sources.load_coco(ann["train"], os.path.join(raw, "train"), COCO17)
  if not complete(sets["unlabeled"]):
    convert.convert(train_src, os.path.join(data_root, "train"), ("unlabeled",), workers=workers, verbose=verbose)
  for n in num_labeled:
    if not complete(sets[labeled_dir_name(n)]):
      convert.convert(
        train_src,
        os.path.dirname(sets[labeled_dir_name(n)]),
        ("labeled",),
        num_labeled=n,
        workers=workers,
        verbose=verbose,
      )
  if not complete(sets["eval"]):
    val_src = sources.load_coco(ann["val"], os.path.join(raw, "val"), COCO17)
    convert.convert(val_src, os.path.join(data_root, "val"), ("eval",), workers=workers, verbose=verbose)
  return sets
