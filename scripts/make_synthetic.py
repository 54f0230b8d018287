#!/usr/bin/env python
"""Renders a synthetic COCO-format person keypoint dataset (json + JPEGs) for the demo and benchmarks.

Example:
  python scripts/make_synthetic.py --out data/synthetic --train 2000 --val 200 --seed 0
  python scripts/make_tfrecords.py coco --annotations data/synthetic/annotations/person_keypoints_train.json \\
      --images data/synthetic/train --out data/synthetic_tfr --num_labeled 200
"""

from __future__ import annotations

import argparse
import sys

from semipose_tf.console import VERBOSE_FLAG, VERBOSE_HELP, quiet_start  # noqa: E402

quiet_start()

from semipose_tf.synthetic import generate, render  # noqa: E402


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument(VERBOSE_FLAG, action="store_true", help=VERBOSE_HELP)
  p.add_argument("--out", required=True, help="dataset root")
  p.add_argument("--train", type=int, default=1000, help="training images")
  p.add_argument("--val", type=int, default=100, help="validation images")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--height", type=int, default=240, help="image height")
  p.add_argument("--width", type=int, default=320, help="image width")
  p.add_argument("--max_people", type=int, default=3)
  p.add_argument("--hard_prob", type=float, default=0.25, help="share of degraded (blur / dark / noisy) images")
  p.add_argument("--workers", type=int, help="rendering processes (default: the cores)")
  args = p.parse_args(argv)
  if args.height < 64 or args.width < 64:
    p.error("--height and --width must be at least 64")
  config = render.SyntheticConfig(
    image_size=(args.height, args.width), max_people=args.max_people, hard_prob=args.hard_prob
  )
  splits = {k: v for k, v in (("train", args.train), ("val", args.val)) if v > 0}
  generate.generate(args.out, splits, seed=args.seed, config=config, workers=args.workers)
  return 0


if __name__ == "__main__":
  sys.exit(main())
