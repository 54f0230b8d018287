#!/usr/bin/env python
"""Training-step throughput of every method: images per second (labeled + unlabeled) per optimizer step.

SimpleBaseline-R18 at 256x192, batch 8 labeled + 8 unlabeled on a CPU (``--batch 32`` on a GPU), fp32 and
mixed precision, XLA off / on. The input pipeline is left out (random batches), so this measures the step itself.
Prints what it measured:

  python benchmarks/train_step.py [--batch 8] [--steps 3] [--methods single,plus] [--policies float32]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from semipose_tf.console import VERBOSE_FLAG, VERBOSE_HELP, quiet_start  # noqa: E402

quiet_start()

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from semipose_tf.models import build_pose_model  # noqa: E402
from semipose_tf.train.teacher_student import SemiSupervisedPose  # noqa: E402


def batch(b: int, k: int = 17):
  return {"labeled": {"image": tf.random.normal((b, 256, 192, 3)), "heatmaps": tf.random.uniform((b, 64, 48, k)),
                      "weights": tf.ones((b, k))},
          "unlabeled": {"image": tf.random.normal((b, 256, 192, 3))}}


def measure(method: str, policy: str, b: int, steps: int, jit: bool) -> float:
  dtype = None if policy == "float32" else policy
  net = build_pose_model("resnet18", dtype=dtype)
  extra = {}
  if method == "dual":
    extra["net2"] = build_pose_model("resnet18", dtype=dtype)
  if method == "pseudopose":
    extra["frozen_teacher"] = build_pose_model("resnet18", dtype=dtype)
  model = SemiSupervisedPose(net, method=method, **extra)
  opt = keras.optimizers.Adam(1e-3)
  if policy == "mixed_float16":
    opt = keras.optimizers.LossScaleOptimizer(opt)
  model.compile(optimizer=opt)
  step = tf.function(model.train_step, jit_compile=jit)
  data = batch(b)
  for _ in range(2):
    float(step(data)["total_loss"])
  start = time.perf_counter()
  for _ in range(steps):
    out = step(data)
  float(out["total_loss"])
  images = 2 * b if method != "supervised" else b
  return images * steps / (time.perf_counter() - start)


def main() -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument(VERBOSE_FLAG, action="store_true", help=VERBOSE_HELP)
  p.add_argument("--batch", type=int, default=8, help="labeled and unlabeled batch size each")
  p.add_argument("--steps", type=int, default=3)
  p.add_argument("--methods", default="supervised,pseudopose,single,adaptive,plus,dual")
  p.add_argument("--policies", default="float32,mixed_bfloat16")
  p.add_argument("--jit", default="off", help="off, on or both")
  args = p.parse_args()
  devices = [d.name for d in tf.config.list_logical_devices() if d.device_type != "CPU"] or ["CPU"]
  print(f"TensorFlow {tf.__version__}, {devices}, {os.cpu_count()} CPU cores; SimpleBaseline-R18 256x192, "
        f"batch {args.batch} labeled + {args.batch} unlabeled (supervised: labeled only)")
  print(f"{'method':11s} {'policy':15s} {'jit':4s} {'images/s':>9s}")
  jits = {"off": [False], "on": [True], "both": [False, True]}[args.jit]
  for method in args.methods.split(","):
    for policy in args.policies.split(","):
      for jit in jits:
        try:
          r = f"{measure(method, policy, args.batch, args.steps, jit):9.2f}"
        except Exception as e:  # e.g. an op without an XLA kernel; say so and go on.
          r = f"failed: {type(e).__name__}: {str(e).splitlines()[0][:80]}"
        print(f"{method:11s} {policy:15s} {'on' if jit else 'off':4s} {r}", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
