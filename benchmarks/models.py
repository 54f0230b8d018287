#!/usr/bin/env python
"""Forward and training throughput (images/s) of the pose networks at 256x192, batch 8, fp32 and bf16.

A training step is forward + JointsMSE-style loss + backward + Adam update in a ``tf.function``. Prints what it
measured on this machine:

  python benchmarks/models.py [--batch 8] [--steps 5] [--backbones resnet18,resnet50,hrnet_w32]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from semipose_tf.console import VERBOSE_FLAG, VERBOSE_HELP, quiet_start  # noqa: E402

quiet_start()

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from semipose_tf.codec.geometry import DEFAULT_INPUT_SIZE  # noqa: E402
from semipose_tf.models import build_pose_model  # noqa: E402
from semipose_tf.models.factory import count_params  # noqa: E402


def rate(fn, batch: int, steps: int, warmup: int = 2) -> float:
  for _ in range(warmup):
    fn()
  start = time.perf_counter()
  for _ in range(steps):
    fn()
  return batch * steps / (time.perf_counter() - start)


def main() -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument(VERBOSE_FLAG, action="store_true", help=VERBOSE_HELP)
  p.add_argument("--batch", type=int, default=8)
  p.add_argument("--steps", type=int, default=5)
  p.add_argument("--backbones", default="resnet18,resnet50,hrnet_w32")
  p.add_argument("--policies", default="float32,mixed_bfloat16")
  args = p.parse_args()
  devices = [d.device_type for d in tf.config.list_logical_devices()]
  print(
    f"TensorFlow {tf.__version__}, devices {devices}, {os.cpu_count()} CPU cores, "
    f"input {DEFAULT_INPUT_SIZE[0]}x{DEFAULT_INPUT_SIZE[1]}, "
    f"batch {args.batch}"
  )
  print(f"{'backbone':10s} {'policy':15s} {'params':>8s} {'forward img/s':>14s} {'train img/s':>12s}")
  h, w = DEFAULT_INPUT_SIZE
  x = tf.random.normal((args.batch, h, w, 3))
  y = tf.random.uniform((args.batch, h // 4, w // 4, 17))
  for backbone in args.backbones.split(","):
    for policy in args.policies.split(","):
      model = build_pose_model(backbone, dtype=None if policy == "float32" else policy)
      opt = keras.optimizers.Adam(1e-3)
      forward = tf.function(lambda: model(x, training=False))

      @tf.function
      def train():
        with tf.GradientTape() as tape:
          loss = 0.5 * tf.reduce_mean(tf.square(model(x, training=True) - y))
        opt.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss

      f = rate(forward, args.batch, args.steps)
      t = rate(train, args.batch, args.steps)
      print(f"{backbone:10s} {policy:15s} {count_params(model) / 1e6:7.1f}M {f:14.1f} {t:12.1f}", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
