"""What the benchmark scripts share: a run's history, mean and spread over seeds, writing the results page."""

from __future__ import annotations

import csv
import os
import platform
import subprocess
import sys

import numpy as np


def checkout_env(root: str) -> dict[str, str]:
  """The environment for the scripts a benchmark runs: ``PYTHONPATH`` starts at ``root``, so that a benchmark
  started from a git worktree (a fixed commit) trains with that commit's package, not the installed one."""
  path = os.environ.get("PYTHONPATH", "")
  return {**os.environ, "PYTHONPATH": os.path.abspath(root) + (os.pathsep + path if path else "")}


def require_checkout(root: str) -> None:
  """Exits with a one-line error when ``semipose_tf`` is not imported from ``root`` (a worktree run without
  ``PYTHONPATH=<worktree>`` would measure the installed code, not the commit it records)."""
  import semipose_tf

  here = os.path.dirname(os.path.dirname(os.path.abspath(semipose_tf.__file__)))
  if os.path.realpath(here) != os.path.realpath(root):
    raise SystemExit(
      f"error: semipose_tf is imported from {here}, not from this checkout {root}; run the benchmark "
      f"as PYTHONPATH={root} python {os.path.relpath(sys.argv[0], root)} ..."
    )


def read_history(work_dir: str) -> list[dict[str, float]]:
  """The rows of a training run's ``history.csv`` (one per epoch), [] before its first epoch."""
  path = os.path.join(work_dir, "history.csv")
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]


def last(record: dict, key: str) -> float | None:
  """A benchmark record's ``key`` after its last epoch (None when it has no epochs or no such key)."""
  return record["epochs"][-1].get(key) if record.get("epochs") else None


def fmt(x: float, digits: int = 1) -> str:
  """A page's number: ``digits`` decimals, or "-" for NaN (nothing measured)."""
  return "-" if x != x else f"{x:.{digits}f}"


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


def provenance(root: str) -> dict[str, str]:
  """Where a record was measured: the checkout's commit, the CPU and the numeric libraries' versions.

  A deterministic run repeats on one machine, not across CPUs or library versions (Eigen picks its kernels by the
  instructions a CPU has), so a table built over several machines says which row ran on which."""
  from importlib import metadata

  commit = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
  cpu = platform.processor() or platform.machine()
  try:
    with open("/proc/cpuinfo") as f:
      info = f.read()
    cpu = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), cpu)
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    cpu += (
      " (" + ", ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile") if f in flags) + ")"
    )
  except OSError:
    pass
  versions = []
  for package in ("tensorflow", "keras", "numpy"):
    try:
      versions.append(f"{package} {metadata.version(package)}")
    except metadata.PackageNotFoundError:
      versions.append(f"{package} -")
  return {"commit": commit or "unknown", "cpu": f"{cpu}, {os.cpu_count()} cores", "versions": ", ".join(versions)}
