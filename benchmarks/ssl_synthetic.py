#!/usr/bin/env python
"""The small-scale reproduction: the paper's methods on synthetic people, a few seeds each, one markdown table.

First the shared starting point, ``synthetic/burn_in.gin`` (supervised, 300 labels, 5,000 steps from random
weights), then ``scripts/train.py --gin_file=synthetic/<method>.gin`` from it (see ``gin_configs/base/synthetic.gin``:
128x96 input, a width-16 SimpleBaseline-R18, 300 labeled persons, ~12,000 unlabeled, 6 epochs x 250 steps of
16 + 16, COCO AP on the val split every epoch) for each method and seed. Writes
``benchmarks/results/ssl_synthetic.md``: the final AP per run, mean and spread per method, wall time, and the
adaptive mask counts over training split by the generator's own hard / easy flag.

  python benchmarks/ssl_synthetic.py                      # everything: 5 methods x 2 seeds (about 55 min, 2 cores)
  python benchmarks/ssl_synthetic.py --methods supervised,plus --seeds 0
  python benchmarks/ssl_synthetic.py --report_only        # rebuild the table from finished runs
  python benchmarks/ssl_synthetic.py --methods oracle_affine,oracle_single,oracle_plus --seeds 0  # diagnostics

A finished run (its ``final.keras`` and full ``history.csv``) is reused; an interrupted one resumes from its backup.
The diagnostics ``oracle_affine`` / ``oracle_single`` / ``oracle_plus`` train the same branches against the
unlabeled persons' ground-truth heatmaps instead of the teacher's: they tell the branches' own effect apart from
the teacher's errors.
The mask-count statistics come from each epoch's checkpoint: the count Algorithm 1 gives every probe person (the
first persons of the unlabeled set, un-augmented crops, network in inference mode) with that epoch's network.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
from semipose_tf.console import VERBOSE_FLAG, VERBOSE_HELP, quiet_start  # noqa: E402

quiet_start()  # Reports and pictures load TensorFlow in this process; its start-up lines stay hidden.

from results_io import checkout_env, methods_and_seeds, read_history, require_checkout, stats, write_page  # noqa: E402

METHODS = ("supervised", "single", "adaptive", "plus", "upper_bound")
# Diagnostics, run when named in --methods: the strong branches against ground-truth targets (no teacher).
DIAGNOSTICS = ("oracle_affine", "oracle_single", "oracle_plus")
PAPER = {
  "supervised": "31.5",
  "single": "42.1",
  "adaptive": "42.9",
  "plus": "47.3",
  "upper_bound": "-",
  "oracle_affine": "-",
  "oracle_single": "-",
  "oracle_plus": "-",
}
LABELS = {
  "supervised": "Supervised (300 labels)",
  "single": "Single (5 fixed masks)",
  "adaptive": "Ours, adaptive masking",
  "plus": "Ours, plus (adaptive + mixup)",
  "upper_bound": "Supervised, all ~12k labels (upper bound)",
  "oracle_affine": "Diagnostic: strong affine only (no cutout), ground-truth targets",
  "oracle_single": "Diagnostic: single's branch, ground-truth targets",
  "oracle_plus": "Diagnostic: plus's branches, ground-truth targets",
}


def _algorithm_1() -> str:
  """Algorithm 1's settings as the runs used them (the defaults of semipose_tf/method_config.py)."""
  from semipose_tf.method_config import Masking

  m = Masking()
  return f"gamma {m.gamma}, m {m.mask_max}, m_min {m.mask_min}, tau {m.tau}"


def run(method: str, seed: int, args, burn_in: str | None = None) -> dict:
  """Trains one (method, seed) unless it finished before; returns its record."""
  work_dir = os.path.join(args.work_root, method, f"seed_{seed}")
  record_path = os.path.join(work_dir, "benchmark.json")
  final = os.path.join(work_dir, "checkpoints", "final.keras")
  if os.path.exists(record_path) and os.path.exists(final):
    with open(record_path) as f:
      return json.load(f)
  if args.report_only:
    return {}
  cmd = [
    sys.executable,
    os.path.join(ROOT, "scripts", "train.py"),
    f"--gin_file=synthetic/{method}.gin",
    f"--work_dir={work_dir}",
    f"--data_root={args.data_root}",
    f"--gin_param=RuntimeConfig.seed={seed}",
    "--gin_param=FitConfig.keep_every=1",
    "--gin_param=FitConfig.verbose=2",
    *[f"--gin_param={p}" for p in args.gin_param],
  ]
  if burn_in:
    cmd.append(f"--gin_param=BURN_IN = {burn_in!r}")
  print(f"\n=== {method}, seed {seed}: {' '.join(cmd[1:])}", flush=True)
  start = time.time()
  subprocess.run(cmd, check=True, env=checkout_env(ROOT))
  wall = time.time() - start
  history = read_history(work_dir)
  record = {
    "method": method,
    "seed": seed,
    "wall_s": wall,
    "work_dir": work_dir,
    "ap": [h.get("val_AP") for h in history],
    "ap50": [h.get("val_AP50") for h in history],
    "train_mask_count": [h.get("mask_count") for h in history],
  }
  with open(record_path, "w") as f:
    json.dump(record, f, indent=1)
  return record


def probe_counts(work_dir: str, args, num: int = 600) -> list[dict[str, float]]:
  """Mean adaptive mask count per epoch checkpoint, for hard and easy probe persons."""
  import keras
  import numpy as np

  import semipose_tf.models  # noqa: F401
  from semipose_tf.augment.cutout import adaptive_mask_count
  from semipose_tf.data import pipeline
  from semipose_tf.method_config import MethodConfig
  from semipose_tf.train.task import read_method_config

  cache = os.path.join(work_dir, "mask_counts.json")
  if os.path.exists(cache):
    with open(cache) as f:
      return json.load(f)
  with open(os.path.join(args.data_root, "raw", "annotations", "person_keypoints_train.json")) as f:
    hard = {a["id"]: bool(a["hard"]) for a in json.load(f)["annotations"]}
  data = (
    pipeline.eval_dataset(
      os.path.join(args.data_root, "train", "unlabeled"), None, 64, pipeline.PipelineConfig.of_size((128, 96))
    )
    .unbatch()
    .take(num)
    .batch(64)
  )
  batches = [(b["image"], np.array([hard[int(i)] for i in b["ann_id"].numpy()])) for b in data]
  out = []
  ckpts = sorted(f for f in os.listdir(os.path.join(work_dir, "checkpoints")) if f.startswith("epoch_"))
  masking = (read_method_config(work_dir) or MethodConfig()).masking  # The run's own Algorithm 1 settings.
  for name in ckpts:
    net = keras.models.load_model(os.path.join(work_dir, "checkpoints", name))
    counts, flags = [], []
    for images, is_hard in batches:
      counts.append(adaptive_mask_count(net(images, training=False), masking).numpy())
      flags.append(is_hard)
    counts, flags = np.concatenate(counts), np.concatenate(flags)
    out.append(
      {
        "epoch": int(name[6:9]),
        "hard": float(counts[flags].mean()),
        "easy": float(counts[~flags].mean()),
        "num_hard": int(flags.sum()),
        "num_easy": int((~flags).sum()),
      }
    )
    del net
  with open(cache, "w") as f:
    json.dump(out, f, indent=1)
  return out


def untrained_ap(args) -> float:
  """COCO AP of the benchmark's network before training (seed 0): what learning is measured against."""
  import gin

  from semipose_tf import configurable
  from semipose_tf.data import pipeline
  from semipose_tf.evaluation.coco import COCOEvaluator
  from semipose_tf.keypoints import COCO17

  configurable.parse_gin(["synthetic/supervised.gin"])
  with gin.unlock_config():
    import keras

    keras.utils.set_random_seed(0)
    net = configurable.build_pose_model(input_size=(128, 96), num_keypoints=17)
  eval_dir = os.path.join(args.data_root, "val", "eval")
  data = pipeline.eval_dataset(eval_dir, COCO17, 64, pipeline.PipelineConfig.of_size((128, 96)))
  ann = os.path.join(args.data_root, "raw", "annotations", "person_keypoints_val.json")
  return COCOEvaluator(ann, data, COCO17)(lambda x: net(x, training=False))["AP"]


def report(records: dict, counts: dict, untrained: float | None, start: dict, args) -> str:
  lines = [
    "# Small-scale reproduction on synthetic people",
    "",
    f"Measured by `python benchmarks/ssl_synthetic.py` on {datetime.date.today()} "
    f"({platform.processor() or platform.machine()}, {os.cpu_count()} cores, CPU only). "
    "Setting: `gin_configs/base/synthetic.gin` (128x96 crops, SimpleBaseline-R18 at width 16, 300 labeled "
    "persons of ~12k; every method starts from the same supervised burn-in network, `synthetic/burn_in.gin`, "
    "and trains 6 epochs x 250 steps of 16 labeled + 16 unlabeled, Adam 1e-3, x0.1 at epochs 4 and 5). "
    "AP: COCO keypoint AP (pycocotools) on the val persons with ground-truth boxes, after the last epoch (no "
    "best-epoch picking). Spread: sample standard deviation over seeds (the seed sets the data order, the "
    "augmentation and the step's randomness; the burn-in is shared). Why a burn-in: "
    "[ssl_synthetic_from_scratch.md](ssl_synthetic_from_scratch.md); what the ordering shows and the "
    "diagnostics run on it: [ssl_synthetic_findings.md](ssl_synthetic_findings.md).",
    "",
    "| Method | Paper, 1K COCO labels | AP per seed | AP mean | spread | AP50 mean | wall time per run |",
    "|---|---|---|---|---|---|---|",
  ]
  if untrained is not None:
    lines.append(f"| Untrained network | - | - | {100 * untrained:.1f} | - | - | - |")
  if start:
    lines.append(
      f"| Starting point: supervised burn-in, 5,000 steps | - | - | {100 * start['ap'][-1]:.1f} | - | "
      f"{100 * start['ap50'][-1]:.1f} | {start['wall_s'] / 60:.1f} min (once) |"
    )
  for m in METHODS + DIAGNOSTICS:
    recs = [r for r in records.get(m, []) if r]
    if not recs:
      continue
    final = [r["ap"][-1] for r in recs]
    mean, sd = stats(final)
    ap50, _ = stats([r["ap50"][-1] for r in recs])
    wall, _ = stats([r["wall_s"] for r in recs])
    per_seed = ", ".join(f"{100 * a:.1f}" for a in final)
    lines.append(
      f"| {LABELS[m]} | {PAPER[m]} | {per_seed} | **{100 * mean:.1f}** | {100 * sd:.1f} | "
      f"{100 * ap50:.1f} | {wall / 60:.1f} min |"
    )
  epochs = max((len(r["ap"]) for rs in records.values() for r in rs if r), default=0)
  lines += [
    "",
    "AP after each epoch (mean over seeds):",
    "",
    "| Method | " + " | ".join(f"epoch {e + 1}" for e in range(epochs)) + " |",
    "|---|" + "---|" * epochs,
  ]
  for m in METHODS + DIAGNOSTICS:
    recs = [r for r in records.get(m, []) if r]
    if recs:
      n = min(len(r["ap"]) for r in recs)
      lines.append(
        f"| {m} | " + " | ".join(f"{100 * stats([r['ap'][e] for r in recs])[0]:.1f}" for e in range(n)) + " |"
      )
  if not any(counts.get(m) for m in ("adaptive", "plus")):
    return "\n".join(lines) + "\n"
  lines += [
    "",
    "## Adaptive mask counts over training, by difficulty",
    "",
    f"Mean number of masked joints Algorithm 1 assigns ({_algorithm_1()}) to 600 unlabeled "
    "probe persons with each epoch's network, split by the generator's own `hard` flag (degraded image, "
    "more than 35% occluded, or small), mean over seeds; and the mean count the training step logged over "
    "the epoch (all persons, weak views, teacher batch norm in training mode).",
    "",
    "| Method | Epoch | easy persons | hard persons | logged in training (all) |",
    "|---|---|---|---|---|",
  ]
  probe = None
  for m in ("adaptive", "plus"):
    runs = counts.get(m, [])
    recs = [r for r in records.get(m, []) if r]
    if not runs:
      continue
    for e in range(min(len(r) for r in runs)):
      easy, _ = stats([r[e]["easy"] for r in runs])
      hard, _ = stats([r[e]["hard"] for r in runs])
      logged, _ = stats([r["train_mask_count"][e] for r in recs])
      lines.append(f"| {m} | {e + 1} | {easy:.2f} | {hard:.2f} | {logged:.2f} |")
      probe = runs[0][0]
  if probe:
    lines += ["", f"Probe: {probe['num_easy']} easy and {probe['num_hard']} hard persons."]
  return "\n".join(lines) + "\n"


def main() -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--methods", default=",".join(METHODS))
  p.add_argument("--seeds", default="0,1")
  p.add_argument("--data_root", default=os.path.join(ROOT, "data", "synthetic"))
  p.add_argument("--work_root", default=os.path.join(ROOT, "work_dirs", "ssl_synthetic"))
  p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "ssl_synthetic.md"))
  p.add_argument("--gin_param", action="append", default=[], help="extra bindings for every run")
  p.add_argument("--report_only", action="store_true", help="only tabulate finished runs")
  p.add_argument(VERBOSE_FLAG, action="store_true", help=VERBOSE_HELP)
  args = p.parse_args()
  require_checkout(ROOT)  # A worktree benchmark measures its own commit.
  methods, seeds = methods_and_seeds(p, args.methods, args.seeds, METHODS + DIAGNOSTICS)
  # The shared starting point of every method (seed 0), then each method and seed from it.
  start = run("burn_in", 0, args)
  burn_in = os.path.join(args.work_root, "burn_in", "seed_0", "checkpoints", "final.keras")
  records = {m: [run(m, s, args, burn_in) for s in seeds] for m in methods}
  counts = {
    m: [probe_counts(r["work_dir"], args) for r in records[m] if r] for m in ("adaptive", "plus") if m in records
  }
  # The untrained network's AP needs the data; --report_only on a machine without it leaves that row out.
  has_data = os.path.exists(os.path.join(args.data_root, "val", "eval", "manifest.json"))
  table = report(records, counts, untrained_ap(args) if has_data else None, start, args)
  write_page(table, args.out)
  return 0


if __name__ == "__main__":
  sys.exit(main())
