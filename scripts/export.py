#!/usr/bin/env python
"""Exports a trained pose network (.keras): a SavedModel for TF Serving, or ONNX / LiteRT / OpenVINO for other
runtimes.

  python scripts/export.py work_dirs/coco_1k/checkpoints/best.keras exports/pose/1
  python scripts/export.py best.keras exports/pose_onnx --format onnx
  python scripts/export.py best.keras exports/pose_fp16 --format litert --variant float16
  python scripts/export.py best.keras exports/pose_openvino --format openvino
  python scripts/export.py best.keras exports/pose_int8 --format litert --variant int8 \
      --representative data/coco_val/eval
  saved_model_cli show --dir exports/pose/1 --all

SavedModel signatures: ``serving_default`` (images: JPEG/PNG bytes [N], boxes: [N, 4] x, y, w, h -> keypoints
[N, K, 2] in image pixels, scores [N, K]) and ``heatmaps`` (crops: normalized [N, H, W, 3] -> heatmaps). ONNX,
LiteRT and OpenVINO take normalized crops [N, H, W, 3] and give heatmaps, keypoints in crop pixels and scores
(``semipose_tf/deploy.py``); they need the deploy extra (pip install -e '.[deploy]'). Every format goes from a photo
and boxes to image keypoints with ``scripts/predict.py --model <it>`` (``semipose_tf.predictor``).
int8 is calibrated on crops of the --representative evaluation set. The network's keypoint spec goes with every
format; --spec gives one to a network saved without it. An existing output is refused unless --overwrite, and stays
whole until the new one is.
Score an artifact with ``python scripts/evaluate.py <dataset> --artifact <folder> --eval_dir ...``.
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
  p.add_argument("output", help="output folder (a SavedModel for TF Serving: <model_base_path>/<version>)")
  p.add_argument("--format", default="saved_model", help="saved_model (default), onnx, litert or openvino")
  p.add_argument("--variant", default="float32", help="litert: float32 (default), float16 or int8")
  p.add_argument("--representative", help="int8: an evaluation TFRecord set whose crops calibrate the quantization")
  p.add_argument("--representative_count", type=int, default=128, help="int8: crops drawn from that set")
  p.add_argument("--overwrite", action="store_true", help="replace an existing output (swapped in when complete)")
  p.add_argument(
    "--max_pixels",
    type=int,
    default=40_000_000,
    help="largest accepted image, width x height (larger ones are refused before decoding)",
  )
  p.add_argument("--spec", help="keypoint spec for a network saved without one (default: the network's)")
  p.add_argument("--gin_file", action="append", default=[], help="gin file(s) defining a custom --spec")
  args = p.parse_args(argv)

  import semipose_tf.models  # noqa: F401
  from semipose_tf import configurable, deploy
  from semipose_tf.export import export_saved_model
  from semipose_tf.keypoints import UnknownSpecError, check_same, get_spec
  from semipose_tf.models.factory import load_network

  try:  # The request's rules (deploy.check_request), before the network is even loaded.
    deploy.check_request(args.output, args.format, args.variant, args.overwrite, args.representative, cli=True)
  except (ValueError, FileExistsError, deploy.MissingExtra) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
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

  spec = getattr(net, "keypoint_spec", None)
  spec_note = f"keypoint spec: {spec.name if spec else 'none, pass --spec to record one'}"
  what = "the SavedModel" if args.format == "saved_model" else f"the {args.format} artifact"
  try:
    if args.format == "saved_model":
      export_saved_model(net, args.output, args.max_pixels)
      print(f"SavedModel written to {args.output} (signatures: serving_default, heatmaps; {spec_note})")
      return 0
    representative = None
    if args.variant == "int8":
      representative = _representative(args.representative, net, args.representative_count)
    deploy.export_artifact(net, args.output, args.format, args.variant, representative, overwrite=True)
  except (deploy.MissingExtra, FileNotFoundError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  except (OSError, tf.errors.OpError) as e:  # A full disk: nothing half-written is left at the output path.
    print(f"error: cannot write {what} {args.output}: {error_text(e)}", file=sys.stderr)
    return 2
  size = deploy.file_size(args.output) / 1e6
  print(
    f"{args.format} ({args.variant}) written to {args.output} ({size:.1f} MB; input crops "
    f"{'x'.join(map(str, net.input_shape[1:3]))}, outputs heatmaps / keypoints / scores; {spec_note})"
  )
  return 0


def _representative(set_dir: str, net, count: int):
  """Normalized crops of the first ``count`` people of an evaluation set, in batches of 8 (int8 calibration)."""
  from semipose_tf import codec
  from semipose_tf.data import pipeline, records

  records.read_manifest(set_dir)  # A missing or incomplete set is a one-line error here, not mid-conversion.
  config = pipeline.PipelineConfig(codec.HeatmapCodec.of_network(net))
  data = pipeline.eval_dataset(set_dir, None, 8, config).unbatch().take(count).batch(8)
  return lambda: (batch["image"].numpy() for batch in data)


if __name__ == "__main__":
  sys.exit(main())
