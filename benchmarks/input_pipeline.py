#!/usr/bin/env python
"""Input pipeline throughput: labeled and unlabeled examples per second at 256x192, full augmentation + targets.

Converts the real COCO images of ../shared/data/coco_mini (train2017) to TFRecords in a temporary folder, then
times the labeled pipeline (decode, random scale / rotation / flip, crop warp, keypoint transform, Gaussian
targets, normalization, batching) and the unlabeled weak-view pipeline. Prints what it measured.

  python benchmarks/input_pipeline.py [--data ../shared/data/coco_mini] [--batch 32] [--batches 60]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import tensorflow as tf  # noqa: E402

from semipose_tf.data import convert, pipeline, sources  # noqa: E402
from semipose_tf.keypoints import COCO17  # noqa: E402


def measure(ds: tf.data.Dataset, batch: int, batches: int, warmup: int = 5) -> float:
  it = iter(ds)
  for _ in range(warmup):
    next(it)
  start = time.perf_counter()
  for _ in range(batches):
    next(it)
  return batch * batches / (time.perf_counter() - start)


def main() -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--data", default=os.path.join(os.path.dirname(ROOT), "shared", "data", "coco_mini"))
  p.add_argument("--batch", type=int, default=32)
  p.add_argument("--batches", type=int, default=60)
  p.add_argument("--repeats", type=int, default=3)
  args = p.parse_args()
  ann = os.path.join(args.data, "annotations", "person_keypoints_train2017.json")
  if not os.path.exists(ann):
    print(f"coco_mini not found at {args.data}; pass --data")
    return 1
  config = pipeline.PipelineConfig(input_size=(256, 192))
  with tempfile.TemporaryDirectory() as tmp:
    src = sources.load_coco(ann, os.path.join(args.data, "train2017"), COCO17)
    convert.convert(src, tmp, ("labeled", "unlabeled"), verbose=False)
    print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPU cores, input 256x192, heatmaps 64x48x17, "
          f"batch {args.batch}, {len(src.items)} real COCO persons in "
          f"{len({it[0] for it in src.items})} images")
    for name, make in (
        ("labeled", lambda: pipeline.labeled_dataset(f"{tmp}/labeled", COCO17, args.batch, config, seed=0)),
        ("unlabeled", lambda: pipeline.unlabeled_dataset(f"{tmp}/unlabeled", COCO17, args.batch, config, seed=0,
                                                         repeat=True)),
    ):
      rates = [measure(make(), args.batch, args.batches) for _ in range(args.repeats)]
      print(f"{name:9s}: {max(rates):7.1f} examples/s (best of {args.repeats}; all: "
            f"{', '.join(f'{r:.1f}' for r in rates)})")
  return 0


if __name__ == "__main__":
  sys.exit(main())
