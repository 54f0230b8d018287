#!/usr/bin/env python
"""Converts a torchvision ResNet checkpoint (``resnet18-5c106cde.pth`` style) to a backbone ``.weights.h5``.

Needs PyTorch once, for reading the ``.pth`` (``pip install 'semipose_tf[torch]'``); the result loads without it:

  python scripts/convert_torchvision.py --depth 18 resnet18-5c106cde.pth resnet18_imagenet.weights.h5
  python scripts/train.py ... --gin_param='build_pose_model.pretrained="resnet18_imagenet.weights.h5"'
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from semipose_tf.console import VERBOSE_FLAG, VERBOSE_HELP, quiet_start  # noqa: E402

quiet_start()

from semipose_tf.models import SimpleBaseline  # noqa: E402
from semipose_tf.models.pretrained import (PretrainedWeightsError, load_backbone_weights,  # noqa: E402
                                           save_backbone_weights)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument(VERBOSE_FLAG, action="store_true", help=VERBOSE_HELP)
  p.add_argument("--depth", type=int, required=True, choices=(18, 34, 50, 101, 152))
  p.add_argument("checkpoint", help="torchvision ResNet .pth")
  p.add_argument("output", help="output .weights.h5")
  args = p.parse_args(argv)
  model = SimpleBaseline(args.depth, 17, (None, None, 3))
  try:
    load_backbone_weights(model, args.checkpoint)
    save_backbone_weights(model, args.output)
  except (PretrainedWeightsError, FileNotFoundError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(f"wrote {args.output} (ResNet-{args.depth} backbone)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
