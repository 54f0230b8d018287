"""Tiny TFRecord sets in the layout the gin experiments expect, for trainer tests (no real data)."""

import os

import numpy as np
import tensorflow as tf

from semipose_tf.conversion import convert
from semipose_tf.data import records
from semipose_tf.keypoints import AIC14, COCO17, LSP14, MPII16, KeypointSpec


def write_set(
  directory: str, set_name: str, spec: KeypointSpec, num_images: int = 6, seed: int = 0, extra: dict | None = None
) -> None:
  k = spec.num_keypoints
  rng = np.random.default_rng(seed)
  entries = []
  for i in range(num_images):
    h, w = 96, 80
    path = os.path.join(directory + "_images", f"{i:04d}.png")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tf.io.write_file(path, tf.io.encode_png(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)))
    instances = []
    for j in range(2):
      kps = np.zeros((k, 3), np.float32)
      kps[:, 0] = rng.uniform(10, 70, k)
      kps[:, 1] = rng.uniform(10, 86, k)
      kps[:, 2] = 2
      instances.append(records.Instance(i * 10 + j, np.array([5, 5, 60, 80], np.float32), kps, 1.0, 4800.0))
    entries.append(records.ImageEntry(i, path, w, h, instances))
  extra = {"keypoint_spec": spec.to_json(), **(extra or {})}
  convert.write_set(entries, directory, set_name, verbose=False, manifest_extra=extra)


def make_lspet_layout(root: str) -> str:
  """data_root of the LSPET benchmark's gin files (gin_configs/lspet*/, base/lspet_bench.gin): label budgets, the
  all-labels copy (the probe and the oracles' unlabeled stream), the unlabeled set and the test set."""
  for d, s in (
    ("labeled_200/labeled", "labeled"),
    ("labeled_1000/labeled", "labeled"),
    ("labeled_all/labeled", "labeled"),
    ("unlabeled", "unlabeled"),
    ("eval", "eval"),
  ):
    write_set(os.path.join(root, d), s, LSP14, seed=len(d))
  return root


def make_layout(root: str) -> str:
  """data_root for every gin experiment: COCO budgets, COCO train/val, MPII train/val, AIC, LSPET."""
  for d, s, spec in (
    ("coco_1k/labeled", "labeled", COCO17),
    ("coco_5k/labeled", "labeled", COCO17),
    ("coco_10k/labeled", "labeled", COCO17),
    ("coco_train/unlabeled", "unlabeled", COCO17),
    ("coco_val/eval", "eval", COCO17),
    ("mpii/labeled", "labeled", MPII16),
    ("mpii_val/eval", "eval", MPII16),
    ("aic/unlabeled", "unlabeled", AIC14),
    ("lspet/unlabeled", "unlabeled", LSP14),
    ("lspet/eval", "eval", LSP14),
    ("lspet_1k/labeled", "labeled", LSP14),
  ):
    write_set(os.path.join(root, d), s, spec, seed=len(d))
  return root
