"""What the benchmark scripts share: a run's history, mean and spread over seeds, writing the results page."""

from __future__ import annotations

import csv
import os

import numpy as np


def read_history(work_dir: str) -> list[dict[str, float]]:
  """The rows of a training run's ``history.csv`` (one per epoch), [] before its first epoch."""
  path = os.path.join(work_dir, "history.csv")
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]


def stats(values) -> tuple[float, float]:
  """Mean and sample standard deviation of the finite values (NaN, NaN when there are none; sd 0 for one)."""
  v = np.asarray([x for x in values if x is not None and np.isfinite(x)], np.float64)
  if len(v) == 0:
    return float("nan"), float("nan")
  return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def write_page(text: str, path: str) -> None:
  """Writes the results page (aside first, so a reader never sees half of it) and prints it."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path + ".tmp", "w") as f:
    f.write(text)
  os.replace(path + ".tmp", path)
  print(text)
  print(f"Written to {path}")


def methods_and_seeds(parser, methods: str, seeds: str, known) -> tuple[list[str], list[int]]:
  """The ``--methods`` and ``--seeds`` lists of a benchmark; an unknown method is a usage error naming the known."""
  chosen = [m for m in methods.split(",") if m]
  for m in chosen:
    if m not in known:
      parser.error(f"unknown method {m!r}; choose from {tuple(known)}")
  return chosen, [int(s) for s in seeds.split(",") if s]
