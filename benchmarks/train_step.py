#!/usr/bin/env python
"""Training-step throughput of every method: images per second (labeled + unlabeled) per optimizer step.

SimpleBaseline-R18 at 256x192, batch 8 labeled + 8 unlabeled on a CPU (``--batch 32`` on a GPU), fp32 and
mixed precision, XLA off / on. The input pipeline is left out (random batches), so this measures the step itself.
``--networks`` compares networks side by side in one run (the LSPET regimes: ``r18w16`` is SimpleBaseline-R18 at
width 16 with deconv 64 x 3, ``lite0`` EfficientNet-Lite0 with deconv 128 x 3); ``--deterministic`` times it with
TensorFlow op determinism on (``RuntimeConfig.deterministic``). Prints what it measured:

  python benchmarks/train_step.py [--batch 8] [--steps 3] [--methods single,plus] [--policies float32]
  python benchmarks/train_step.py --networks r18w16@256,lite0@192 --batch 16 --keypoints 14 --methods supervised,plus
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

from semipose_tf.codec import DEFAULT_INPUT_SIZE  # noqa: E402
from semipose_tf.models import build_pose_model  # noqa: E402
from semipose_tf.train import determinism  # noqa: E402
from semipose_tf.train.teacher_student import SemiSupervisedPose  # noqa: E402


def batch(b: int, size=DEFAULT_INPUT_SIZE, k: int = 17) -> dict:
  """A random batch of ``b`` labeled and ``b`` unlabeled crops of ``size`` with K heatmaps (stride 4)."""
  h, w = size
  return {
    "labeled": {
      "image": tf.random.normal((b, h, w, 3)),
      "heatmaps": tf.random.uniform((b, h // 4, w // 4, k)),
      "weights": tf.ones((b, k)),
    },
    "unlabeled": {"image": tf.random.normal((b, h, w, 3))},
  }


def build(method: str, policy: str, backbone: str = "resnet18", size=DEFAULT_INPUT_SIZE, k: int = 17, **net_kwargs):
  """(SemiSupervisedPose of the method, its optimizer) for a dtype policy; dual / pseudopose get their second net."""
  dtype = None if policy == "float32" else policy
  make = lambda: build_pose_model(backbone, size, k, dtype=dtype, **net_kwargs)  # noqa: E731
  extra = {"net2": make()} if method == "dual" else {"frozen_teacher": make()} if method == "pseudopose" else {}
  model = SemiSupervisedPose(make(), method, **extra)
  opt = keras.optimizers.Adam(1e-3)
  return model, (keras.optimizers.LossScaleOptimizer(opt) if policy == "mixed_float16" else opt)


def time_steps(step, data, steps: int, images: int) -> float:
  """Images per second of ``step(data)`` over ``steps`` calls, after two warm-up calls (tracing, allocation)."""
  for _ in range(2):
    float(step(data)["total_loss"])
  start = time.perf_counter()
  for _ in range(steps):
    out = step(data)
  float(out["total_loss"])
  return images * steps / (time.perf_counter() - start)


NETWORKS = {
  "r18": ("resnet18", {}),
  "r18w16": ("resnet18", {"width": 16, "deconv_filters": (64, 64, 64)}),
  "lite0": ("efficientnet_lite0", {"deconv_filters": (128, 128, 128)}),
}


def measure(
  method: str, policy: str, b: int, steps: int, jit: bool, network: str = "r18", size=DEFAULT_INPUT_SIZE, k: int = 17
) -> float:
  backbone, net_kwargs = NETWORKS[network]
  model, opt = build(method, policy, backbone, size, k, **net_kwargs)
  model.compile(optimizer=opt)
  images = 2 * b if method != "supervised" else b
  return time_steps(tf.function(model.train_step, jit_compile=jit), batch(b, size, k), steps, images)


def main() -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument(VERBOSE_FLAG, action="store_true", help=VERBOSE_HELP)
  p.add_argument("--batch", type=int, default=8, help="labeled and unlabeled batch size each")
  p.add_argument("--steps", type=int, default=3)
  p.add_argument("--methods", default="supervised,pseudopose,single,adaptive,plus,dual")
  p.add_argument("--policies", default="float32,mixed_bfloat16")
  p.add_argument("--jit", default="off", help="off, on or both")
  p.add_argument(
    "--networks",
    default="r18@256x192",
    help=f"comma-separated NAME@HxW (or NAME@S for SxS), NAME one of {sorted(NETWORKS)}",
  )
  p.add_argument("--keypoints", type=int, default=17)
  p.add_argument(
    "--deterministic", action="store_true", help="TensorFlow op determinism on (RuntimeConfig.deterministic)"
  )
  args = p.parse_args()
  if args.deterministic:  # As a deterministic run has it: op determinism; on a CPU, Grappler off.
    determinism.enable()
    keras.utils.set_random_seed(0)  # Determinism refuses unseeded random ops (the random batches here).
  networks = []
  for item in args.networks.split(","):
    name, _, size = item.partition("@")
    if name not in NETWORKS:
      p.error(f"--networks: unknown network {name!r}; choose from {sorted(NETWORKS)}")
    hw = [int(v) for v in (size or "256x192").split("x")]
    networks.append((name, (hw[0], hw[-1])))
  devices = [d.name for d in tf.config.list_logical_devices() if d.device_type != "CPU"] or ["CPU"]
  print(
    f"TensorFlow {tf.__version__}, {devices}, {os.cpu_count()} CPU cores; batch {args.batch} labeled + "
    f"{args.batch} unlabeled (supervised: labeled only), {args.keypoints} keypoints, op determinism "
    f"{'on' if args.deterministic else 'off'}, Grappler {'off' if determinism.grappler_off() else 'on'}"
  )
  print(f"{'network':18s} {'method':11s} {'policy':15s} {'jit':4s} {'images/s':>9s} {'s/step':>7s}")
  jits = {"off": [False], "on": [True], "both": [False, True]}[args.jit]
  for name, size in networks:
    for method in args.methods.split(","):
      for policy in args.policies.split(","):
        for jit in jits:
          images = args.batch * (1 if method == "supervised" else 2)
          try:
            ips = measure(method, policy, args.batch, args.steps, jit, name, size, args.keypoints)
            r = f"{ips:9.2f} {images / ips:7.2f}"
          except Exception as e:  # e.g. an op without an XLA kernel; say so and go on.
            r = f"failed: {type(e).__name__}: {str(e).splitlines()[0][:80]}"
          label = f"{name} {size[0]}x{size[1]}"
          print(f"{label:18s} {method:11s} {policy:15s} {'on' if jit else 'off':4s} {r}", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
