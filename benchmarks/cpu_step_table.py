#!/usr/bin/env python
"""Our training step against PyTorch's best CPU setting, side by side in one run on one machine.

For each network (SimpleBaseline-R18 at 256x192, batch 8 + 8, 17 heatmaps; EfficientNet-Lite0 + deconv 128 x 3 at
192x192, batch 16 + 16, 14 heatmaps), each method (supervised, plus) and each precision (float32, bfloat16), runs
``benchmarks/train_step.py`` (ours) and ``benchmarks/reference_step.py`` (PyTorch, NCHW and ``channels_last``)
in fresh processes, one after the other, and repeats the whole sequence ``--passes`` times so that a change in the
machine's load shows as a spread rather than as a difference between the two. Writes the median s/step of each
cell and every pass's value to a page:

  python benchmarks/cpu_step_table.py [--passes 2] [--steps 3] [--out benchmarks/results/cpu_step.md]

Run it on an idle machine (the page records the load average before and after). Needs PyTorch
(requirements-test.txt has the CPU build).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# name -> (our --networks value, batch, keypoints, the reference's network name)
NETWORKS = {
  "SimpleBaseline-R18 256x192": ("r18@256x192", 8, 17, "r18"),
  "EfficientNet-Lite0 192x192": ("lite0@192", 16, 14, "lite0"),
}
METHODS = ("supervised", "plus")
PRECISIONS = {"float32": ("float32", "float32"), "bfloat16": ("mixed_bfloat16", "bfloat16")}  # ours, PyTorch's


def _rows(cmd: list[str]) -> list[list[str]]:
  """The timed rows a step script prints (network, size, method, dtype, 4th column, images/s, s/step), split."""
  r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
  if r.returncode:
    raise RuntimeError(f"{' '.join(cmd)} failed: {r.stderr.strip().splitlines()[-1:]}")
  return [parts for parts in map(str.split, r.stdout.splitlines()) if len(parts) == 7 and parts[2] in METHODS]


def ours(network: str, batch: int, k: int, steps: int, precisions=tuple(PRECISIONS)) -> dict:
  """{(method, precision): s/step} from one train_step.py process."""
  rows = _rows(
    [
      sys.executable,
      "benchmarks/train_step.py",
      "--networks",
      network,
      "--batch",
      str(batch),
      "--keypoints",
      str(k),
      "--methods",
      ",".join(METHODS),
      "--policies",
      ",".join(PRECISIONS[p][0] for p in precisions),
      "--steps",
      str(steps),
    ]
  )
  policy = {ours: name for name, (ours, _) in PRECISIONS.items()}  # 4th column: jit
  return {(r[2], policy[r[3]], "ours"): float(r[6]) for r in rows}


def reference(network: str, batch: int, steps: int, precisions=tuple(PRECISIONS)) -> dict:
  """{(method, precision, format): s/step} from one reference_step.py process."""
  rows = _rows(
    [
      sys.executable,
      "benchmarks/reference_step.py",
      "--networks",
      network,
      "--batch",
      str(batch),
      "--methods",
      ",".join(METHODS),
      "--dtypes",
      ",".join(PRECISIONS[p][1] for p in precisions),
      "--formats",
      "channels_first,channels_last",
      "--steps",
      str(steps),
    ]
  )
  dtype = {torch_dtype: name for name, (_, torch_dtype) in PRECISIONS.items()}  # 4th column: memory format
  return {(r[2], dtype[r[3]], f"PyTorch {r[4]}"): float(r[6]) for r in rows}


def main() -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--passes", type=int, default=2)
  p.add_argument("--steps", type=int, default=3)
  p.add_argument("--networks", default=",".join(NETWORKS), help="comma-separated names of NETWORKS")
  p.add_argument("--precisions", default=",".join(PRECISIONS), help="comma-separated: float32, bfloat16")
  p.add_argument("--batch", type=int, help="every network's batch (default: each network's own, 8 or 16)")
  p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "cpu_step.md"))
  args = p.parse_args()
  load_before = os.getloadavg()[0]
  names = args.networks.split(",")
  precisions = args.precisions.split(",")
  for bad, known, flag in ((names, NETWORKS, "--networks"), (precisions, PRECISIONS, "--precisions")):
    if set(bad) - set(known):
      p.error(f"{flag}: unknown {sorted(set(bad) - set(known))}; choose from {list(known)}")
  cells: dict = {}
  for n in range(args.passes):
    for name in names:
      network, batch, k, ref = NETWORKS[name]
      batch = args.batch or batch
      for part in (ours(network, batch, k, args.steps, precisions), reference(ref, batch, args.steps, precisions)):
        for key, value in part.items():
          cells.setdefault((name,) + key, []).append(value)
      print(f"pass {n + 1}: {name} done", flush=True)
  commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
  import torch

  lines = [
    "# The training step on a CPU: ours against PyTorch's best setting, side by side",
    "",
    f"`{shlex.join(['python', 'benchmarks/cpu_step_table.py', *sys.argv[1:]])}` at commit "
    f"{commit.stdout.strip()}, {datetime.date.today()}, {platform.node()}: {os.cpu_count()} cores "
    f"({platform.processor() or platform.machine()}), load average {load_before:.2f} before and "
    f"{os.getloadavg()[0]:.2f} after; PyTorch {torch.__version__}. Seconds per optimizer step (median of "
    f"{args.passes} interleaved passes, each of {args.steps} timed steps after 2 warm-up steps; every pass's value "
    "in brackets). Random batches: the input pipeline is left out. plus runs the supervised pass, the teacher pass "
    "(no gradient), the strong pass and the mixup pass (image or before layer3); ours also counts joints to mask "
    "(Algorithm 1) and cuts them out as the method does.",
    "",
    "| network | method | precision | ours | PyTorch NCHW | PyTorch channels_last | ours / PyTorch's best |",
    "|---|---|---|---|---|---|---|",
  ]
  for name in names:
    for method in METHODS:
      for precision in precisions:
        row = [
          cells.get((name, method, precision, impl), [])
          for impl in ("ours", "PyTorch channels_first", "PyTorch channels_last")
        ]
        med = [statistics.median(v) if v else float("nan") for v in row]
        text = [f"{m:.2f} ({', '.join(f'{x:.2f}' for x in v)})" for m, v in zip(med, row)]
        best = min(med[1], med[2])
        lines.append(f"| {name} | {method} | {precision} | " + " | ".join(text) + f" | {med[0] / best:.2f} |")
  os.makedirs(os.path.dirname(args.out), exist_ok=True)
  with open(args.out, "w") as f:
    f.write("\n".join(lines) + "\n")
  print("\n".join(lines))
  return 0


if __name__ == "__main__":
  sys.exit(main())
