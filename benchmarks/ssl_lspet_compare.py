#!/usr/bin/env python
"""The three LSPET tables side by side: random weights (200 labels), the ImageNet start (1,000 labels) on the
whole image, and the ImageNet start on person boxes.

Reads the finished runs' records that ``benchmarks/ssl_lspet.py`` keeps in ``benchmarks/results/ssl_lspet/``,
``benchmarks/results/ssl_lspet_imagenet/`` and ``benchmarks/results/ssl_lspet_box/`` (committed, so this needs no
work folder and no training) and writes
``benchmarks/results/ssl_lspet_side_by_side.md``: per row and regime the test PCK@0.2 (mean ± spread over the paired
seeds), the paired gain over the supervised row seed by seed, and what the teacher knows (its pseudo-label PCK@0.2
on the held-back probe people after the last epoch). A row not measured yet says so.

  python benchmarks/ssl_lspet_compare.py
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from results_io import last, stats, write_page

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")
# The rows of both tables, in the paper's order, then the label upper bound and the ground-truth diagnostic.
ROWS = (
  ("supervised", "supervised"),
  ("affine", "affine only"),
  ("single", "single"),
  ("adaptive", "adaptive"),
  ("plus", "plus"),
  ("upper_bound", "all 9,000 labels"),
  ("oracle_plus", "plus, ground-truth targets (diagnostic)"),
)
REGIMES = (("ssl_lspet", "random"), ("ssl_lspet_imagenet", "ImageNet"), ("ssl_lspet_box", "boxes"))


def load(name: str, records: str = RESULTS) -> dict[str, dict[int, dict]]:
  """The kept records of one regime: ``{method: {seed: record}}`` (the shared start under ``burn_in``, seed 0)."""
  folder, out = os.path.join(records, name), {}
  for f in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
    if f.endswith(".json"):
      with open(os.path.join(folder, f)) as fh:
        r = json.load(fh)
      out.setdefault(r["method"], {})[r.get("seed", 0)] = r
  return out


def cells(table: dict, method: str) -> tuple[str, str, str]:
  """PCK@0.2 (mean ± spread, seeds), the paired gain per seed, the teacher's probe PCK@0.2: one regime's cells."""
  runs = table.get(method, {})
  if not runs:
    return "not run yet", "", ""
  seeds = sorted(runs)
  mean, sd = stats([last(runs[s], "val_PCK@0.2") for s in seeds])
  pck = f"{mean:.1f}" + (f" ± {sd:.1f}" if len(seeds) > 1 else "") + f" ({len(seeds)} seed{'s' * (len(seeds) > 1)})"
  base = table.get("supervised", {})
  paired = [s for s in seeds if s in base]
  gain = (
    "-"
    if method == "supervised" or not paired
    else " / ".join(f"{last(runs[s], 'val_PCK@0.2') - last(base[s], 'val_PCK@0.2'):+.1f}" for s in paired)
  )
  teacher = stats([last(runs[s], "probe_PCK@0.2") for s in seeds])[0]
  return pck, gain, "-" if teacher != teacher else f"{teacher:.0f}%"


def side_by_side(tables: dict[str, dict]) -> str:
  """The markdown page: one line per row, three cells per regime."""
  head = ["Row"] + [f"{title}: {c}" for _, title in REGIMES for c in ("PCK@0.2", "gain per seed", "teacher")]
  lines = [
    "# LSPET: random weights, the ImageNet start and person boxes, side by side",
    "",
    "Built by `python benchmarks/ssl_lspet_compare.py` from the records of `benchmarks/ssl_lspet.py` "
    "(`--regime random`, `imagenet` and `box`). **random**: SimpleBaseline-R18 at width 16 from random "
    "weights, 200 labels, 256x256, 8 epochs x 250 steps per row. **ImageNet**: EfficientNet-Lite0 from its "
    "ImageNet weights, 1,000 labels, 192x192, the whole image as the box, 2 epochs x 250 steps per row. "
    "**boxes**: the same network and labels, each person cropped by the box around its joints, 4 epochs x 250 "
    "steps per row. All: 16 labeled + 16 unlabeled "
    "per step, the 9,000 training images unlabeled, every row from its regime's shared supervised start. "
    "PCK@0.2: torso PCK on the 737 test people with a torso after the last epoch, mean ± sample spread over "
    "paired seeds. Gain per seed: the row minus the "
    "supervised row of the same seed (seeds 0 / 1 / 2). Teacher: the network's pseudo-label PCK@0.2 on the "
    "500 held-back probe people after the last epoch, what the consistency losses copy. Each regime's own "
    "page has the schedule, spreads, joint groups and the monitor per epoch: "
    "[ssl_lspet.md](ssl_lspet.md), [ssl_lspet_imagenet.md](ssl_lspet_imagenet.md), "
    "[ssl_lspet_box.md](ssl_lspet_box.md).",
    "",
    "| " + " | ".join(head) + " |",
    "|---" * len(head) + "|",
  ]
  start = []
  for name, _ in REGIMES:
    r = tables[name].get("burn_in", {}).get(0)
    start += [
      f"{last(r, 'val_PCK@0.2'):.1f}" if r else "not run yet",
      "-",
      f"{last(r, 'probe_PCK@0.2'):.0f}%" if r and last(r, "probe_PCK@0.2") else "-",
    ]
  lines.append("| the shared start | " + " | ".join(start) + " |")
  for method, title in ROWS:
    lines.append(f"| {title} | " + " | ".join(c for name, _ in REGIMES for c in cells(tables[name], method)) + " |")
  return "\n".join(lines) + "\n"


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument(
    "--records", default=RESULTS, help="the folder holding ssl_lspet/, ssl_lspet_imagenet/ and ssl_lspet_box/"
  )
  p.add_argument("--out", default=os.path.join(RESULTS, "ssl_lspet_side_by_side.md"))
  args = p.parse_args(argv)
  tables = {name: load(name, args.records) for name, _ in REGIMES}
  if not any(tables.values()):
    p.error(f"no records under {args.records}/ssl_lspet*/: run benchmarks/ssl_lspet.py first")
  write_page(side_by_side(tables), args.out)
  return 0


if __name__ == "__main__":
  sys.exit(main())
