#!/usr/bin/env python
"""The semi-supervised benchmark on real photos: LSP Extended, a label budget, the 9,000 training images unlabeled.

Every row starts from one shared supervised network on the budget's labels (``<regime>/burn_in.gin``, run once) and
then trains ``gin_configs/<regime>/<method>.gin`` for the regime's schedule, with PCK@0.2 (torso) on the 1,000 test
images and the teacher monitor (pseudo-label PCK on 500 held-back unlabeled people, adaptive mask counts by how
many joints are annotated) after every epoch. The seed fixes data order, augmentation and the step's randomness, so
seeds are paired across methods. Writes ``benchmarks/results/<regime's name>.md``. The regimes:

  random    (``gin_configs/base/lspet_bench.gin``) 200 labels, SimpleBaseline-R18 at width 16 from random weights,
            256x256, 8 epochs x 250 steps of 16 labeled + 16 unlabeled, Adam 1e-3, x0.1 from epoch 6.
  imagenet  (``gin_configs/base/lspet_imagenet_bench.gin``, issue 20) 1,000 labels, EfficientNet-Lite0 from its
            ImageNet weights, 192x192, 2 epochs x 250 steps of 16 + 16 from the shared start, Adam 1e-4.
  box       (``gin_configs/base/lspet_box_bench.gin``, issue 34) the imagenet regime's network and input with each
            person cropped by the box around its annotated joints (``make_tfrecords.py lsp --box joints`` into
            ``data/lspet_box``); schedule fixed by ``lspet_imagenet_regime.py --regime box``.

  python benchmarks/ssl_lspet.py                                 # the table: 6 rows x 3 seeds (resumable)
  python benchmarks/ssl_lspet.py --methods supervised,upper_bound   # the regime's baselines first
  python benchmarks/ssl_lspet.py --report_only                   # rebuild the table from finished runs
  python benchmarks/ssl_lspet.py --methods oracle_plus --seeds 0 # diagnostics: ground-truth targets
  python benchmarks/ssl_lspet.py --regime imagenet               # the ImageNet-start table (issue 20)
  python benchmarks/ssl_lspet.py --regime box --methods anchor_supervised,anchor_plus --seeds 0
                                              # the anchors' schedule: from ImageNet, no shared start (issue 34)

Each regime is a folder of gin files (``--regime``; the imagenet one's budget and schedule were fixed first by the
supervised regime runs of ``benchmarks/lspet_imagenet_regime.py``) with its own work folder, records, page and
pictures.

Data (once, about 4 minutes): ``make_tfrecords.py lsp`` into ``data/lspet_bench`` (``--prepare`` does it from
``../shared/data/lspet``). A finished run (``benchmark.json`` beside its ``final.keras``) is reused, an interrupted
one resumes from its backup, so the table can be built over several sittings and in the background. The shared
start's weights are kept with the records (``<records>/burn_in.keras``, ``benchmarks/kept_start.py``) and restored on
a machine that has not trained it, so rows measured on different machines start from the same network.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
from semipose_tf.console import VERBOSE_FLAG, VERBOSE_HELP, quiet_start  # noqa: E402

quiet_start()  # The report's pictures load TensorFlow in this process; its start-up lines stay hidden.

from kept_start import START, keep_start, restore_start  # noqa: E402
from lspet_page import report  # noqa: E402
from lspet_regimes import DIAGNOSTICS, METHODS, REGIMES  # noqa: E402
from results_io import (  # noqa: E402
  checkout_env,
  methods_and_seeds,
  provenance,
  read_history,
  require_checkout,
  write_page,
)


def prepare(args) -> None:
  """Converts ../shared/data/lspet into the benchmark's sets unless they are there."""
  lsp = os.path.join(args.lspet, "joints.mat")
  convert = [
    sys.executable,
    os.path.join(ROOT, "scripts", "make_tfrecords.py"),
    "lsp",
    "--joints",
    lsp,
    "--images",
    os.path.join(args.lspet, "images"),
    "--box",
    REGIMES[args.regime].get("box", "image"),
  ]
  budget, count = REGIMES[args.regime]["budget"]
  wanted = [
    ("unlabeled", [args.data_root, "--sets", "unlabeled,eval"]),
    (f"{budget}/labeled", [os.path.join(args.data_root, budget), "--sets", "labeled", "--num_labeled", str(count)]),
    ("labeled_all/labeled", [os.path.join(args.data_root, "labeled_all"), "--sets", "labeled"]),
  ]
  for check, extra in wanted:
    if not os.path.exists(os.path.join(args.data_root, check, "manifest.json")):
      subprocess.run(convert + ["--out", *extra], check=True, env=checkout_env(ROOT))


def run(method: str, seed: int, args, burn_in: str | None = None) -> dict:
  """Trains one (method, seed) unless it finished before; returns its record ({} if not run).

  Each finished run's record is also kept in the repository (``--records``, committed), so the table can be
  rebuilt from a fresh clone with ``--report_only`` and a rerun elsewhere skips what is measured."""
  name = method if method == "burn_in" else f"{method}/seed_{seed}"
  work_dir = os.path.join(args.work_root, name)
  record_path = os.path.join(work_dir, "benchmark.json")
  kept = os.path.join(args.records, name.replace("/", "_") + ".json")
  final = os.path.join(work_dir, "checkpoints", "final.keras")
  record = None
  if os.path.exists(record_path) and os.path.exists(final):
    with open(record_path) as f:
      record = json.load(f)
  elif os.path.exists(final):  # Trained by hand with scripts/train.py: its wall time from the files' times.
    config = os.path.join(work_dir, "config.gin")
    record = write_record(method, seed, work_dir, os.path.getmtime(final) - os.path.getmtime(config))
  elif os.path.exists(kept) and (args.report_only or method != "burn_in"):
    with open(kept) as f:  # Measured before (here or on another machine); the burn-in's weights are needed.
      return json.load(f)
  if record is not None:
    if "resumed" not in record:  # A run killed and resumed from its backup: its wall time covers the last sitting.
      record["resumed"] = resumed(work_dir)
    paused = os.path.join(work_dir, "PAUSED_S")  # Seconds the run was stopped (SIGSTOP) to time something else.
    if os.path.exists(paused) and "paused_s" not in record:
      record["paused_s"] = float(open(paused).read())
      record["wall_s"] -= record["paused_s"]
    os.makedirs(args.records, exist_ok=True)
    with open(kept, "w") as f:
      json.dump(record, f, indent=1)
    return record
  if args.report_only:
    return {}
  if method != "burn_in" and not REGIMES[args.regime].get("decided", True):
    raise SystemExit(
      f"the {args.regime} regime's rows wait for its decision ({REGIMES[args.regime]['regime_page']}: the rows' "
      "length is fixed from supervised runs alone); run lspet_imagenet_regime.py --regime box first"
    )
  gin_file = f"{REGIMES[args.regime]['gin_dir']}/{method}.gin"
  if not os.path.exists(os.path.join(ROOT, "gin_configs", gin_file)):
    raise SystemExit(
      f"gin_configs/{gin_file} does not exist: the {args.regime} regime has no {method} row yet "
      "(its regime is fixed first, from supervised runs alone)"
    )
  cmd = [
    sys.executable,
    os.path.join(ROOT, "scripts", "train.py"),
    f"--gin_file={gin_file}",
    f"--work_dir={work_dir}",
    f"--data_root={args.data_root}",
    f"--gin_param=RuntimeConfig.seed={seed}",
    "--gin_param=FitConfig.verbose=2",
    *[f"--gin_param={p}" for p in args.gin_param],
  ]
  if burn_in:
    cmd.append(f"--gin_param=BURN_IN = {burn_in!r}")
  print(f"\n=== {method}, seed {seed}: {' '.join(cmd[1:])}", flush=True)
  start = time.time()
  os.makedirs(work_dir, exist_ok=True)
  with open(os.path.join(work_dir, "train.log"), "a") as log:  # The run's console, kept beside its results.
    subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT, env=checkout_env(ROOT))
  return write_record(method, seed, work_dir, time.time() - start)


def resumed(work_dir: str) -> bool:
  """Whether the run's console shows an epoch started twice (killed, then resumed from its backup)."""
  log = os.path.join(work_dir, "train.log")
  if not os.path.exists(log):
    return False
  with open(log) as f:
    headers = [line.strip() for line in f if re.fullmatch(r"Epoch \d+/\d+", line.strip())]
  return len(headers) != len(set(headers))


def write_record(method: str, seed: int, work_dir: str, wall_s: float) -> dict:
  """The run's result file (``benchmark.json``): per-epoch metrics from its history and the wall time."""
  record = {
    "method": method,
    "seed": seed,
    "wall_s": wall_s,
    "work_dir": os.path.relpath(work_dir, ROOT),
    "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    **provenance(ROOT),
    "epochs": [
      {k: v for k, v in h.items() if k.startswith(("val_", "probe_")) or k == "mask_count"}
      for h in read_history(work_dir)
    ],
  }
  with open(os.path.join(work_dir, "benchmark.json"), "w") as f:
    json.dump(record, f, indent=1)
  return record


def pictures(args, out: str, rows: int = 6) -> None:
  """The supervised and the plus networks (seed 0) side by side on the same test images, with the ground truth."""
  import keras
  import tensorflow as tf

  import semipose_tf.models  # noqa: F401  (registers the network classes for loading)
  from semipose_tf.evaluation.pictures import comparison_sheet

  nets = {}
  for m in ("supervised", "plus"):
    # last.keras: the network the table's last evaluation measured. (Runs made before the fix of 2026-11-29 have
    # a final.keras whose batch-norm statistics the TensorBoard pictures had moved after that evaluation.)
    path = os.path.join(args.work_root, m, "seed_0", "checkpoints", "last.keras")
    if not os.path.exists(path):
      print(f"pictures skipped: {path} is not trained yet")
      return
    net = keras.models.load_model(path)
    nets[m] = lambda x, net=net: net(x, training=False)
  # The first test images (im09001 ..) whose person has all 14 joints annotated: a fixed choice, made before
  # looking at any prediction.
  from semipose_tf.evaluation.pck import set_ground_truth

  eval_dir = os.path.join(args.data_root, "eval")
  truth = set_ground_truth(eval_dir)
  ids = [i for i in sorted(truth) if (truth[i][:, 2] > 0).all()][:rows]
  sheet, titles = comparison_sheet(nets, eval_dir, "lsp14", REGIMES[args.regime]["input_size"], ids, min_size=256)
  os.makedirs(os.path.dirname(out), exist_ok=True)
  tf.io.write_file(out, tf.io.encode_png(sheet))
  print(f"Pictures: {out} (columns: {' | '.join(titles)}; test images {', '.join(f'im{i:05d}' for i in ids)})")


def main() -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument(
    "--regime",
    choices=sorted(REGIMES),
    default="random",
    help="random: the random-weight table; imagenet: from EfficientNet-Lite0's ImageNet weights; box: "
    "the same start with each person cropped by its box (issue 34)",
  )
  p.add_argument("--methods", default=",".join(METHODS))
  p.add_argument("--seeds", default="0,1,2")
  p.add_argument("--lspet", default=os.path.join(os.path.dirname(ROOT), "shared", "data", "lspet"))
  p.add_argument("--data_root", help="the converted sets (default: data/lspet_bench, data/lspet_box for box)")
  p.add_argument("--work_root", help="default: work_dirs/<regime's name>")
  p.add_argument("--out", help="the results page (default: benchmarks/results/<regime's name>.md)")
  p.add_argument(
    "--records",
    help="where each finished run's record is kept, committed with the table "
    "(default: benchmarks/results/<regime's name>/)",
  )
  p.add_argument("--gin_param", action="append", default=[], help="extra bindings for every run")
  p.add_argument("--report_only", action="store_true", help="only tabulate finished runs")
  p.add_argument(
    "--pictures",
    help="where to draw supervised and plus side by side (seed 0) once both are "
    "trained (default: docs/<regime's picture>); '' for none",
  )
  p.add_argument(
    "--seed_major",
    action="store_true",
    help="run seed 0 of every method first, then seed 1 ... (a partial table is then paired)",
  )
  p.add_argument(VERBOSE_FLAG, action="store_true", help=VERBOSE_HELP)
  args = p.parse_args()
  require_checkout(ROOT)  # A worktree benchmark measures its own commit.
  regime = REGIMES[args.regime]
  args.work_root = args.work_root or os.path.join(ROOT, "work_dirs", regime["name"])
  args.data_root = args.data_root or os.path.join(ROOT, regime.get("data_root", "data/lspet_bench"))
  args.out = args.out or os.path.join(ROOT, "benchmarks", "results", regime["name"] + ".md")
  args.records = args.records or os.path.join(ROOT, "benchmarks", "results", regime["name"])
  args.pictures = os.path.join(ROOT, "docs", regime["pictures"]) if args.pictures is None else args.pictures
  methods, seeds = methods_and_seeds(p, args.methods, args.seeds, METHODS + DIAGNOSTICS)
  if not args.report_only:
    prepare(args)
    if restore_start(os.path.join(args.work_root, "burn_in"), args.records):
      print(f"The shared start: {os.path.join(args.records, START)} (kept with the records)", flush=True)
  start = run("burn_in", 0, args)
  burn_in = os.path.join(args.work_root, "burn_in", "checkpoints", "final.keras")
  if not args.report_only:
    keep_start(burn_in, args.records)
  order = [(m, s) for s in seeds for m in methods] if args.seed_major else [(m, s) for m in methods for s in seeds]
  records: dict[str, list[dict]] = {}
  for m, s in order:
    records.setdefault(m, []).append(run(m, s, args, burn_in))
  for m in records:  # Seeds in order, whatever order they ran in.
    records[m].sort(key=lambda r: r.get("seed", 0))
  # Add the rows already finished that this call did not name, so the page always shows everything measured.
  for m in METHODS + DIAGNOSTICS:
    if m not in records:
      args_report = argparse.Namespace(**{**vars(args), "report_only": True})
      found = [run(m, s, args_report) for s in range(10)]
      if any(found):
        records[m] = [r for r in found if r]
  table = report(records, start, args.regime)
  write_page(table, args.out)
  if args.pictures:
    pictures(args, args.pictures)
  return 0


if __name__ == "__main__":
  sys.exit(main())
