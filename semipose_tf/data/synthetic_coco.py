"""Writes a synthetic COCO-format dataset (json + JPEG images) that the ordinary COCO converter reads.

Layout: ``<out>/annotations/person_keypoints_<split>.json`` and ``<out>/<split>/<image_id:012d>.jpg``. The json is
written last and atomically, so a killed run leaves no annotation file pointing at missing images. Each split has
its own seed stream, so train and val never share an image.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
from typing import Mapping

import keras
import numpy as np
import tensorflow as tf

from semipose_tf.data import records, synthetic

_SPLIT_IDS = {"train": 1, "val": 2, "test": 3}


def _render(args):
  seed, split_id, index, config = args
  return synthetic.render_image((seed, split_id, index), config)


def generate(out_dir: str, splits: Mapping[str, int], seed: int = 0,
             config: synthetic.SyntheticConfig = synthetic.SyntheticConfig(), workers: int | None = None,
             verbose: bool = True) -> dict[str, str]:
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
    progbar = keras.utils.Progbar(num_images, unit_name="image") if verbose else None
    if verbose:
      print(f"Rendering {num_images} synthetic {split} images into {image_dir}")
    if workers > 1 and num_images >= 64:
      # Spawned workers import only numpy code (synthetic.py), not TensorFlow.
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
          annotations.append({
              "id": len(annotations) + 1, "image_id": image_id, "category_id": 1, "iscrowd": 0,
              "bbox": [round(v, 2) for v in a["bbox"]], "area": a["area"],
              "keypoints": [float(v) if k % 3 < 2 else int(v) for k, v in enumerate(kps.ravel())],
              "num_keypoints": int((kps[:, 2] > 0).sum()), "hard": a["hard"], "difficulty": a["difficulty"],
          })
        if progbar is not None:
          progbar.update(i + 1)
    finally:
      if pool is not None:
        pool.shutdown()
    data = {"info": {"description": "semipose_tf synthetic people", "seed": seed, "split": split,
                     "config": {k: list(v) if isinstance(v, tuple) else v
                                for k, v in config.__dict__.items()}},
            "licenses": [], "images": images, "annotations": annotations,
            "categories": synthetic.coco_categories()}
    ann_file = os.path.join(ann_dir, f"person_keypoints_{split}.json")
    records.write_json_atomic(ann_file, data)
    out[split] = ann_file
    if verbose:
      hard = sum(a["hard"] for a in annotations)
      print(f"  {len(images)} images, {len(annotations)} people ({hard} hard) -> {ann_file}")
  return out
