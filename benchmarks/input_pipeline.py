#!/usr/bin/env python
"""Input pipeline throughput: labeled and unlabeled examples per second, full augmentation + targets.

Converts real images to TFRecords in a temporary folder (COCO: ../shared/data/coco_mini train2017; LSPET: the first
``--lsp_images`` images of ../shared/data/lspet, with the LSP converter's split), then times the labeled pipeline
(decode, random scale / rotation / flip, crop warp, keypoint transform, Gaussian targets, normalization, batching)
and the unlabeled weak-view pipeline. Prints what it measured.

  python benchmarks/input_pipeline.py [--data ../shared/data/coco_mini] [--batch 32] [--batches 60]
  python benchmarks/input_pipeline.py --dataset lspet --input_size 128,128
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
from semipose_tf.console import VERBOSE_FLAG, VERBOSE_HELP, quiet_start  # noqa: E402

quiet_start()

import tensorflow as tf  # noqa: E402

from semipose_tf.conversion import convert, lsp, sources  # noqa: E402
from semipose_tf.data import pipeline  # noqa: E402
from semipose_tf.keypoints import COCO17, LSP14  # noqa: E402

SHARED = os.path.join(os.path.dirname(ROOT), "shared", "data")


def measure(ds: tf.data.Dataset, batch: int, batches: int, warmup: int = 5) -> float:
  it = iter(ds)
  for _ in range(warmup):
    next(it)
  start = time.perf_counter()
  for _ in range(batches):
    next(it)
  return batch * batches / (time.perf_counter() - start)


def _prepare(args, tmp: str):
  """(spec, description) after converting the chosen dataset's labeled and unlabeled sets into ``tmp``."""
  if args.dataset == "lspet":
    data = args.data or os.path.join(SHARED, "lspet")
    joints = os.path.join(data, "joints.mat")
    if not os.path.exists(joints):
      raise SystemExit(f"LSPET not found at {data}; pass --data")
    src = lsp.load_lsp(joints, os.path.join(data, "images"), indices=range(args.lsp_images))
    convert.convert(src, tmp, ("labeled", "unlabeled"), verbose=False, strip_unlabeled=True)
    return LSP14, f"{len(src.items)} real LSPET images (one person each)"
  data = args.data or os.path.join(SHARED, "coco_mini")
  ann = os.path.join(data, "annotations", "person_keypoints_train2017.json")
  if not os.path.exists(ann):
    raise SystemExit(f"coco_mini not found at {data}; pass --data")
  src = sources.load_coco(ann, os.path.join(data, "train2017"), COCO17)
  convert.convert(src, tmp, ("labeled", "unlabeled"), verbose=False)
  return COCO17, f"{len(src.items)} real COCO persons in {len({it[0] for it in src.items})} images"


def main() -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument(VERBOSE_FLAG, action="store_true", help=VERBOSE_HELP)
  p.add_argument("--dataset", choices=("coco", "lspet"), default="coco")
  p.add_argument("--data", help="dataset folder (default: ../shared/data/coco_mini or ../shared/data/lspet)")
  p.add_argument("--input_size", default=None, help="H,W (default 256,192 for COCO, 128,128 for LSPET)")
  p.add_argument("--lsp_images", type=int, default=1000, help="LSPET images to convert for the measurement")
  p.add_argument("--batch", type=int, default=32)
  p.add_argument("--batches", type=int, default=60)
  p.add_argument("--repeats", type=int, default=3)
  args = p.parse_args()
  size = args.input_size or ("128,128" if args.dataset == "lspet" else "256,192")
  input_size = tuple(int(v) for v in size.split(","))
  config = pipeline.PipelineConfig.of_size(input_size)
  with tempfile.TemporaryDirectory() as tmp:
    spec, what = _prepare(args, tmp)
    h, w = config.heatmap_size
    print(
      f"TensorFlow {tf.__version__}, {os.cpu_count()} CPU cores, input {input_size[0]}x{input_size[1]}, "
      f"heatmaps {h}x{w}x{spec.num_keypoints}, batch {args.batch}, {what}"
    )
    for name, make in (
      ("labeled", lambda: pipeline.labeled_dataset(f"{tmp}/labeled", spec, args.batch, config, seed=0)),
      (
        "unlabeled",
        lambda: pipeline.unlabeled_dataset(f"{tmp}/unlabeled", spec, args.batch, config, seed=0, repeat=True),
      ),
    ):
      rates = [measure(make(), args.batch, args.batches) for _ in range(args.repeats)]
      print(
        f"{name:9s}: {max(rates):7.1f} examples/s (best of {args.repeats}; all: {', '.join(f'{r:.1f}' for r in rates)})"
      )
  return 0


if __name__ == "__main__":
  sys.exit(main())
