#!/usr/bin/env python
"""Behaviour check for refactors: the per-step losses of every method preset, seeded and op-deterministic.

Trains each preset of ``semipose_tf/train/methods.py`` for a few steps on a tiny synthetic set (made on first use
under ``--data_root``), seeded and op-deterministic, and writes every step's logged values to a JSON file.
Run it on two commits (each from its own checkout) and compare: a refactor that keeps the behaviour gives the same
numbers to the last bit on one machine.

  python benchmarks/method_losses.py --out benchmarks/results/method_losses/<commit>.json
  python benchmarks/method_losses.py --compare before.json after.json

It calls :func:`semipose_tf.train.experiment.train` with the typed configuration (``train/config.py``) where the
commit has one and with the flat arguments of the commits before it, so it runs on both sides of that refactor.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import subprocess
import sys
import tempfile

from semipose_tf.console import quiet_start

quiet_start()

import keras  # noqa: E402

from semipose_tf.models.factory import build_pose_model  # noqa: E402
from semipose_tf.synthetic.generate import prepare  # noqa: E402
from semipose_tf.train.experiment import train  # noqa: E402

# Every preset of semipose_tf.train.methods, written out so that the script runs on commits that move it.
METHODS = (
  "supervised",
  "pseudopose",
  "affine",
  "affine_mixup",
  "single",
  "adaptive",
  "plus",
  "dual",
  "oracle_affine",
  "oracle_single",
  "oracle_plus",
)
KEYS = ("total_loss", "loss_s", "loss_u", "loss_m", "mask_count", "mix_lambda", "mix_location")


class _StepLog(keras.callbacks.Callback):
  def __init__(self):
    super().__init__()
    self.steps = []

  def on_train_batch_end(self, batch, logs=None):
    self.steps.append({k: float(logs[k]) for k in KEYS if k in (logs or {})})


def record(data_root: str, work_root: str, steps: int) -> dict:
  sets = prepare(
    data_root, train_images=40, val_images=4, num_labeled=(12, None), max_people=1, workers=1, verbose=False
  )
  net = functools.partial(build_pose_model, backbone="resnet18", width=8, deconv_filters=(16, 16, 16))
  common = dict(
    labeled_dir=sets["labeled_12"],
    unlabeled_dir=sets["unlabeled"],
    spec="coco17",
    input_size=(64, 64),
    labeled_batch_size=4,
    unlabeled_batch_size=4,
    steps_per_epoch=steps,
    epochs=1,
    learning_rate=1e-3,
    lr_milestones=(),
    backup_every_steps=None,
    checkpoint_monitor=None,
    deterministic=True,
    seed=3,
    model_fn=net,
    verbose=0,
  )
  out = {}
  order = ["supervised"] + sorted(m for m in METHODS if m != "supervised")  # pseudopose needs supervised's net.
  for method in order:
    log = _StepLog()
    extra = {}
    if method == "pseudopose":
      extra["pseudopose_teacher"] = os.path.join(work_root, "supervised", "checkpoints", "final.keras")
    if method.startswith("oracle_"):  # Their unlabeled stream carries the ground truth.
      extra["unlabeled_dir"] = sets["labeled_all"]
    try:
      _train(os.path.join(work_root, method), method, [log], {**common, **extra})
    except ValueError as e:  # Before 2026-12-01 the oracle presets' TensorBoard pictures failed at the epoch end.
      if len(log.steps) < steps:
        raise
      print(f"{method}: every step ran; the epoch end failed: {e}")
    out[method] = log.steps
    print(method, " ".join(f"{k}={v:.9g}" for k, v in log.steps[-1].items()), flush=True)
  return out


def _train(work_dir: str, method: str, callbacks: list, settings: dict) -> None:
  """``train`` with the typed configuration, or with flat arguments on commits before it."""
  try:
    from semipose_tf.train import config
  except ImportError:  # Before the typed configuration: train(work_dir, labeled_dir, **flat).
    settings = dict(settings)
    train(work_dir, settings.pop("labeled_dir"), method=method, extra_callbacks=callbacks, **settings)
    return
  from semipose_tf.method_config import MethodConfig

  own = {"model_fn", "pseudopose_teacher"}
  parts = {}
  for name, cls in (("data", config.DataConfig), ("optimizer", config.OptimizerConfig),
                    ("runtime", config.RuntimeConfig), ("fit", config.FitConfig)):  # fmt: skip
    fields = {f.name for f in dataclasses.fields(cls)}
    parts[name] = cls(**{k: v for k, v in settings.items() if k in fields})
  train(work_dir, method=MethodConfig(method=method), extra_callbacks=callbacks,
        **parts, **{k: v for k, v in settings.items() if k in own})  # fmt: skip


def compare(a_path: str, b_path: str) -> int:
  a, b = (json.load(open(p)) for p in (a_path, b_path))
  worst = 0.0
  for method in sorted(set(a["methods"]) | set(b["methods"])):
    if method not in a["methods"] or method not in b["methods"]:
      print(f"{method}: only in {'the first' if method in a['methods'] else 'the second'} file")
      worst = float("inf")
      continue
    diffs = [abs(x[k] - y[k]) for x, y in zip(a["methods"][method], b["methods"][method]) for k in x]
    d = max(diffs) if diffs else 0.0
    worst = max(worst, d)
    print(f"{method:15s} steps {len(a['methods'][method])}  max |difference| {d:.3g}")
  print(f"{a['commit'][:7]} vs {b['commit'][:7]}: max |difference| over every method and step {worst:.3g}")
  return 0 if worst == 0.0 else 1


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--out", help="JSON file to write")
  p.add_argument("--steps", type=int, default=3)
  p.add_argument("--data_root", default=os.path.join(tempfile.gettempdir(), "semipose_method_losses_data"))
  p.add_argument("--compare", nargs=2, metavar=("A", "B"), help="compare two recorded files; exit 1 if they differ")
  args = p.parse_args(argv)
  if args.compare:
    return compare(*args.compare)
  if not args.out:
    p.error("--out or --compare is required")
  commit = subprocess.run(
    ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=os.path.dirname(os.path.abspath(__file__))
  ).stdout.strip()
  with tempfile.TemporaryDirectory() as work_root:
    methods = record(args.data_root, work_root, args.steps)
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  with open(args.out, "w") as f:
    json.dump({"commit": commit, "steps": args.steps, "methods": methods}, f, indent=1)
  print(f"wrote {args.out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
