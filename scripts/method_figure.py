#!/usr/bin/env python
"""Draws the method, one row per unlabeled person: weak view | teacher heatmaps | masked strong view | mixed view.

The pieces are the training step's own (``SemiSupervisedPose.targets``, ``mask_count``, ``strong_views``
and ``mixup.mix``), applied to a trained network, for persons of increasing difficulty: rows are sorted by the
teacher's adaptive mask count, most masks (confident, easy) first. Writes a PNG and prints one line per row.

  python scripts/method_figure.py --model work_dirs/demo/checkpoints/final.keras --data data/demo/train/unlabeled \\
      --out docs/method.png
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

from semipose_tf.console import VERBOSE_FLAG, VERBOSE_HELP, quiet_start  # noqa: E402

quiet_start()


def heatmap_panel(image, heatmaps, np):
  """The image darkened, with the maximum over joints of the heatmaps in red-yellow on top."""
  h, w = image.shape[:2]
  hm = np.clip(heatmaps.max(-1), 0, None)
  hm = hm / max(float(hm.max()), 1e-6)
  sy, sx = h // hm.shape[0], w // hm.shape[1]
  hm = np.repeat(np.repeat(hm, sy, 0), sx, 1)[..., None]
  heat = np.concatenate([np.ones_like(hm), hm, np.zeros_like(hm)], -1) * 255
  return (0.35 * image + hm * heat + (1 - hm) * 0.3 * image).clip(0, 255).astype(np.uint8)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument(VERBOSE_FLAG, action="store_true", help=VERBOSE_HELP)
  p.add_argument("--model", required=True, help="a trained pose network (.keras)")
  p.add_argument("--data", required=True, help="an unlabeled (or any) TFRecord set")
  p.add_argument("--out", default="docs/method.png")
  p.add_argument("--rows", type=int, default=4, help="persons shown")
  p.add_argument("--candidates", type=int, default=64, help="persons the rows are chosen from")
  p.add_argument("--seed", type=int, default=1)
  p.add_argument("--scale", type=int, default=2, help="pixel enlargement of the picture")
  args = p.parse_args(argv)
  import keras
  import numpy as np
  import tensorflow as tf

  import semipose_tf.models  # noqa: F401
  from semipose_tf import codec, visualize
  from semipose_tf.augment import mixup
  from semipose_tf.data import ops, pipeline
  from semipose_tf.keypoints import COCO17
  from semipose_tf.method_config import MethodConfig
  from semipose_tf.train.task import read_method_config
  from semipose_tf.train.teacher_student import SemiSupervisedPose

  if not os.path.exists(args.model):
    print(f"error: model not found: {args.model}", file=sys.stderr)
    return 2
  net = keras.models.load_model(args.model)
  size = tuple(int(v) for v in net.input_shape[1:3])
  # The settings of the run the network comes from (its work dir's method_config.json), as plus: the figure
  # shows the adaptive count, cutout, strong view and mixup of that run.
  method = read_method_config(args.model)
  if method is None:
    print(f"note: no method_config.json beside {args.model}: drawing with the default settings", file=sys.stderr)
  model = SemiSupervisedPose(net, dataclasses.replace(method or MethodConfig(), method="plus"), seed=args.seed)
  config = pipeline.PipelineConfig.of_size(size)
  x_w = next(iter(pipeline.unlabeled_dataset(args.data, None, args.candidates, config, seed=args.seed)))["image"]
  h_t, _ = model.targets(0, {"image": x_w})
  counts = model.mask_count(h_t).numpy()
  # Rows from the most masks (confident) to the fewest (hard), spread over the range of counts.
  order = np.argsort(-counts, kind="stable")
  pick = order[np.linspace(0, len(order) - 1, args.rows).round().astype(int)]
  x_w, h_t = tf.gather(x_w, pick), tf.gather(h_t, pick)
  num = tf.constant(counts[pick])
  x_s = model.strong_views(x_w, h_t, num, tf.constant([args.seed, 7], tf.int64))["strong"]
  lam, perm = tf.constant(0.6), tf.roll(tf.range(len(pick)), 1, 0)
  x_m = mixup.mix(x_w, lam, perm)
  rows = []
  for i in range(len(pick)):
    weak = ops.denormalize(x_w[i]).numpy()
    kps, scores = codec.decode_heatmaps(h_t[i])
    weak_drawn = visualize.draw_keypoints(
      weak, model.geometry.to_input(kps).numpy(), COCO17, scores.numpy(), threshold=0.1
    )
    strong = ops.denormalize(x_s[i]).numpy()
    mixed = ops.denormalize(x_m[i]).numpy()
    gap = np.full((weak.shape[0], 4, 3), 255, np.uint8)
    rows.append(np.concatenate([weak_drawn, gap, heatmap_panel(weak, h_t[i].numpy(), np), gap, strong, gap, mixed], 1))
    best = float(tf.reduce_max(h_t[i]))
    print(
      f"row {i + 1}: adaptive mask count {int(num[i])}, teacher's best joint response {best:.3f}, "
      f"mixed with row {int(perm[i]) + 1} (lambda 0.6)"
    )
  sep = np.full((4, rows[0].shape[1], 3), 255, np.uint8)
  sheet = np.concatenate(sum(([r, sep] for r in rows), [])[:-1], 0)
  sheet = np.repeat(np.repeat(sheet, args.scale, 0), args.scale, 1)
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  tf.io.write_file(args.out, tf.io.encode_png(sheet))
  print(
    f"written {args.out}: columns weak view (teacher keypoints) | teacher heatmaps | masked strong view | mixed view"
  )
  return 0


if __name__ == "__main__":
  sys.exit(main())
