#!/usr/bin/env python
"""Exports a trained pose network (.keras) as a SavedModel for TF Serving.

  python scripts/export.py work_dirs/coco_1k/checkpoints/best.keras exports/pose/1
  saved_model_cli show --dir exports/pose/1 --all

Signatures: ``serving_default`` (images: JPEG/PNG bytes [N], boxes: [N, 4] x, y, w, h -> keypoints [N, K, 2] in
image pixels, scores [N, K]) and ``heatmaps`` (crops: normalized [N, H, W, 3] -> heatmaps). See README.md. The
network's keypoint spec goes with it (``assets.extra/keypoint_spec.json``); --spec gives one to a network saved
without it.
"""

from __future__ import annotations

import argparse
import sys

from semipose_tf.console import VERBOSE_FLAG, VERBOSE_HELP, error_text, quiet_start  # noqa: E402

quiet_start()


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument(VERBOSE_FLAG, action="store_true", help=VERBOSE_HELP)
  p.add_argument("checkpoint", help="a .keras pose network")
  p.add_argument("output", help="SavedModel directory (TF Serving: <model_base_path>/<version>)")
  p.add_argument("--max_pixels", type=int, default=40_000_000,
                 help="largest accepted image, width x height (larger ones are refused before decoding)")
  p.add_argument("--spec", help="keypoint spec for a network saved without one (default: the network's)")
  p.add_argument("--gin_file", action="append", default=[], help="gin file(s) defining a custom --spec")
  args = p.parse_args(argv)

  import semipose_tf.models  # noqa: F401
  from semipose_tf import configurable
  from semipose_tf.export import export_saved_model
  from semipose_tf.models.factory import load_network
  from semipose_tf.keypoints import UnknownSpecError, check_same, get_spec

  try:
    configurable.parse_gin(args.gin_file)
    net = load_network(args.checkpoint, "checkpoint")
    if args.spec:
      spec = get_spec(args.spec)
      if getattr(net, "keypoint_spec", None) is not None:
        check_same(spec, net.keypoint_spec, f"--spec {args.spec}", args.checkpoint, "--spec")
      net.keypoint_spec = spec
  except (FileNotFoundError, ValueError, UnknownSpecError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  import tensorflow as tf

  try:
    export_saved_model(net, args.output, args.max_pixels)
  except (OSError, tf.errors.OpError) as e:  # A full disk: nothing half-written is left at the output path.
    print(f"error: cannot write the SavedModel {args.output}: {error_text(e)}", file=sys.stderr)
    return 2
  spec = getattr(net, "keypoint_spec", None)
  print(f"SavedModel written to {args.output} (signatures: serving_default, heatmaps; keypoint spec: "
        f"{spec.name if spec else 'none, pass --spec to record one'})")
  return 0


if __name__ == "__main__":
  sys.exit(main())
