#!/usr/bin/env python
"""Keypoints for one image, written as JSON and drawn as a PNG (skeleton in the spec's colours, scores as alpha).

  python scripts/predict.py --model work_dirs/coco_1k/checkpoints/best.keras --image photo.jpg --out out/photo
  python scripts/predict.py --model exports/pose/1 --image photo.jpg --boxes "10,20,150,300;200,40,120,280"
  python scripts/predict.py --model best.keras --image 000000000785.jpg --detections dets.json --image_id 785
  python scripts/predict.py --model exports/pose_onnx --image photo.jpg --boxes "10,20,150,300"

--model is any format: a .keras checkpoint, a SavedModel folder, or an ONNX / LiteRT / OpenVINO folder written by
scripts/export.py (run in its own runtime: the deploy extra). Every format crops, decodes and maps back to the
image as the evaluation does (semipose_tf.predictor.Predictor, the same few lines in Python).

Boxes (x, y, w, h): from --boxes, from a detection json (COCO results format; --image_id and --score_threshold
select them), or, with neither, the whole image as one box (said when it happens: a top-down network needs a box
around each person, and a small person in a large image is predicted badly). Writes <out>.json and <out>.png.
The keypoint names and skeleton come from the model (a network trained by this project carries its spec, and its
SavedModel too); --spec names one for a model that carries none (a gin-defined spec needs --gin_file). Small images
are drawn enlarged (--min_size).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from semipose_tf.console import VERBOSE_FLAG, VERBOSE_HELP, quiet_start  # noqa: E402

quiet_start()


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument(VERBOSE_FLAG, action="store_true", help=VERBOSE_HELP)
  p.add_argument(
    "--model",
    required=True,
    help="a .keras checkpoint, a SavedModel folder, or an ONNX / LiteRT / OpenVINO folder written by export.py",
  )
  p.add_argument("--image", required=True)
  p.add_argument(
    "--out", help="output path without extension (default: work_dirs/predict/<image name>, out of the source tree)"
  )
  p.add_argument("--boxes", help='person boxes "x,y,w,h;x,y,w,h"')
  p.add_argument("--detections", help="detection json (COCO results format)")
  p.add_argument("--image_id", type=int, help="image id of --image in --detections")
  p.add_argument("--score_threshold", type=float, default=0.5, help="minimum detection score")
  p.add_argument("--spec", help="keypoint spec, for a model that carries none (default: the model's)")
  p.add_argument("--gin_file", action="append", default=[], help="gin file(s) defining a custom --spec")
  p.add_argument("--threshold", type=float, default=0.2, help="joints scoring below are not drawn")
  p.add_argument(
    "--min_size",
    type=int,
    default=512,
    help="the picture's longer side is at least this many pixels (small images are enlarged)",
  )
  args = p.parse_args(argv)
  import numpy as np
  import tensorflow as tf

  from semipose_tf import configurable, deploy, predictor, visualize
  from semipose_tf.keypoints import UnknownSpecError, check_same, get_spec

  try:
    image = predictor.read_image(args.image)  # Upright by its EXIF orientation: the boxes are in the view a user sees.
    boxes = predictor.check_boxes(_boxes(args, p, image), image.shape[1], image.shape[0])  # Before any loading.
    configurable.parse_gin(args.gin_file)
    model = predictor.Predictor(args.model)
    spec = model.spec
    if args.spec:
      if spec is not None:
        check_same(get_spec(args.spec), spec, f"--spec {args.spec}", args.model, "--spec")
      spec = spec or get_spec(args.spec)
    if spec is None:
      raise ValueError(
        f"{args.model} carries no keypoint spec (saved before specs travelled with networks): pass --spec NAME"
      )
    out = model(image, boxes)
    kps, scores = out["keypoints"], out["scores"]
    if kps.shape[1] != spec.num_keypoints:  # Checked before anything is written.
      raise ValueError(
        f"{args.model} predicts {kps.shape[1]} keypoints but spec {spec.name!r} has "
        f"{spec.num_keypoints}: pass the spec the model was trained with"
      )
  except (OSError, ValueError, UnknownSpecError, deploy.MissingExtra) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  base = args.out or os.path.join("work_dirs", "predict", os.path.splitext(os.path.basename(args.image))[0])
  os.makedirs(os.path.dirname(os.path.abspath(base)), exist_ok=True)
  people = [
    {"box": [round(float(v), 2) for v in b], "keypoints": k.round(2).tolist(), "scores": s.round(4).tolist()}
    for b, k, s in zip(boxes, kps, scores)
  ]
  with open(base + ".json", "w") as f:
    json.dump(
      {"image": args.image, "keypoint_spec": spec.name, "keypoint_names": list(spec.names), "people": people},
      f,
      indent=1,
    )
  # Enlarged so that a small image's skeleton is readable; keypoints follow (pixel centres stay centres).
  factor = max(1.0, args.min_size / max(image.shape[:2]))
  drawn = image
  if factor > 1.0:
    size = [int(round(image.shape[0] * factor)), int(round(image.shape[1] * factor))]
    drawn = tf.cast(tf.round(tf.image.resize(image, size)), tf.uint8).numpy()
  radius = max(2, int(round(max(drawn.shape[:2]) / 200)))
  for k, s in zip(kps, scores):
    drawn = visualize.draw_keypoints(
      drawn, (k + 0.5) * factor - 0.5, spec, np.clip(s, 0, 1), threshold=args.threshold, radius=radius
    )
  tf.io.write_file(base + ".png", tf.io.encode_png(drawn))
  print(f"{len(people)} person(s): {base}.json, {base}.png")
  return 0


def _boxes(args, p, image) -> list:
  """The person boxes of --boxes, of --detections, or the whole image (said when it happens)."""
  if args.boxes:
    try:
      return [[float(v) for v in b.split(",")] for b in args.boxes.split(";") if b.strip()]
    except ValueError:
      raise ValueError(f'--boxes {args.boxes!r}: write "x,y,w,h;x,y,w,h" in pixels') from None
  if args.detections:
    dets = json.load(open(args.detections))
    if args.image_id is None:
      p.error("--detections needs --image_id")
    if not isinstance(dets, list) or not all(isinstance(d, dict) and {"image_id", "bbox"} <= set(d) for d in dets):
      raise ValueError(
        f"{args.detections} is not a detection file (COCO results format: a JSON list of {{image_id, bbox, "
        "score}}); for an annotation file's boxes, pass --boxes x,y,w,h"
      )
    boxes = [
      d["bbox"]
      for d in dets
      if d["image_id"] == args.image_id and d.get("category_id", 1) == 1 and d.get("score", 1.0) >= args.score_threshold
    ]
    if not boxes:
      raise ValueError(f"no person detection for image {args.image_id} above {args.score_threshold}")
    return boxes
  print(
    f"note: no --boxes or --detections, so the whole {image.shape[1]}x{image.shape[0]} image is taken as "
    'one person\'s box; top-down pose needs a box around each person (--boxes "x,y,w,h;...", or '
    "--detections FILE --image_id N), and a person much smaller than the image is predicted badly"
  )
  return [[0.0, 0.0, float(image.shape[1]), float(image.shape[0])]]


if __name__ == "__main__":
  sys.exit(main())
