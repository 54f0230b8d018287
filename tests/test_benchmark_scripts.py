"""Every benchmark script runs: each one here in a fresh process with the smallest settings it takes, so that a
script that nothing else imports cannot rot (``benchmarks/models.py`` once died of a NameError unnoticed).

What the measurements say is the benchmarks' business; these tests check that each script starts, does its work on
real inputs and writes what it promises. gpu_check.py has its own test (tests/test_gpu_check.py) and
export_formats.py runs in tests/test_deploy.py, beside the network it measures."""

import json
import os
import re
import shutil

import pytest
from conftest import ROOT, run_benchmark, shared_path

RESULTS = os.path.join(ROOT, "benchmarks", "results")


def rows(text: str, first: str) -> list[list[str]]:
  """The whitespace-split lines of ``text`` that start with ``first``."""
  return [line.split() for line in text.splitlines() if line.split()[:1] == [first]]


def test_models_times_a_network_forward_and_training():
  out = run_benchmark("models.py", "--batch", "1", "--steps", "1", "--backbones", "resnet18", "--policies", "float32")
  (row,) = rows(out, "resnet18")
  assert row[1] == "float32" and float(row[-2]) > 0 and float(row[-1]) > 0, out


def test_train_step_times_each_method_of_our_step():
  out = run_benchmark(
    "train_step.py",
    "--networks",
    "r18w16@64",
    "--batch",
    "2",
    "--steps",
    "1",
    "--methods",
    "supervised,plus",
    "--policies",
    "float32",
    "--keypoints",
    "14",
  )
  timed = rows(out, "r18w16")
  assert [r[2] for r in timed] == ["supervised", "plus"], out
  assert all(float(r[-1]) > 0 for r in timed), out  # s/step
  # As a deterministic run has it: op determinism and, without a GPU, Grappler off.
  out = run_benchmark("train_step.py", "--networks", "r18w16@64", "--batch", "2", "--steps", "1", "--methods",
                      "plus", "--policies", "float32", "--keypoints", "14", "--deterministic")  # fmt: skip
  assert "op determinism on, Grappler off" in out and len(rows(out, "r18w16")) == 1, out


def test_reference_step_builds_both_pytorch_networks_and_times_them():
  pytest.importorskip("torch")
  out = run_benchmark("reference_step.py", "--networks", "r18,lite0", "--check")
  # The same networks as ours: the parameter counts of SimpleBaseline-R18 and Lite0 + deconv 128 x 3, 14 joints.
  assert "r18 15376721 parameters" in out and "lite0 6519310 parameters" in out, out
  out = run_benchmark(
    "reference_step.py",
    "--networks",
    "lite0",
    "--batch",
    "2",
    "--steps",
    "1",
    "--methods",
    "supervised,plus",
    "--formats",
    "channels_first,channels_last",
  )
  timed = rows(out, "lite0")
  assert [(r[2], r[4]) for r in timed] == [
    ("supervised", "channels_first"),
    ("supervised", "channels_last"),
    ("plus", "channels_first"),
    ("plus", "channels_last"),
  ], out


@pytest.mark.slow
def test_cpu_step_table_writes_ours_beside_pytorch(tmp_path):
  pytest.importorskip("torch")
  page = tmp_path / "cpu_step.md"
  network = "EfficientNet-Lite0 192x192"
  run_benchmark("cpu_step_table.py", "--networks", network, "--passes", "1", "--steps", "1", "--batch", "2",
        "--precisions", "float32", "--out", str(page))  # fmt: skip
  table = [line for line in page.read_text().splitlines() if line.startswith(f"| {network} |")]
  assert len(table) == 2, page.read_text()  # supervised and plus, float32
  for line in table:
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert "nan" not in line and float(cells[-1]) > 0, line  # Every cell measured, ours / PyTorch's best.


def test_input_pipeline_times_real_coco_photos():
  shared_path("coco_mini", "annotations")
  out = run_benchmark("input_pipeline.py", "--batch", "4", "--batches", "2", "--repeats", "1")
  assert "labeled" in out and "unlabeled" in out, out


@pytest.mark.slow
def test_method_losses_records_every_preset_and_compares(tmp_path):
  out = str(tmp_path / "losses.json")
  # About 140 s on an idle 2-core machine; the timeout only stops a hang (it took over 600 s at load 12).
  run_benchmark("method_losses.py", "--steps", "1", "--out", out, "--data_root", str(tmp_path / "data"), timeout=1800)
  recorded = json.load(open(out))
  assert {"supervised", "single", "adaptive", "plus"} <= set(recorded["methods"]), sorted(recorded["methods"])
  run_benchmark("method_losses.py", "--compare", out, out)  # A file against itself: exit 0.


def test_the_lspet_pages_rebuild_from_the_kept_records(tmp_path):
  """--report_only of the table, the regime runs and the side-by-side page: from the committed records alone."""
  records = tmp_path / "ssl_lspet_imagenet"
  shutil.copytree(os.path.join(RESULTS, "ssl_lspet_imagenet"), records)
  page = tmp_path / "table.md"
  run_benchmark("ssl_lspet.py", "--regime", "imagenet", "--report_only", "--records", str(records),
        "--work_root", str(tmp_path / "work"), "--out", str(page), "--pictures", "")  # fmt: skip
  table = page.read_text()
  assert "| supervised |" in table.lower() or "Supervised" in table, table[:2000]
  regime = tmp_path / "lspet_imagenet_regime"
  shutil.copytree(os.path.join(RESULTS, "lspet_imagenet_regime"), regime)
  run_benchmark("lspet_imagenet_regime.py", "--regime", "imagenet", "--report_only", "--records", str(regime),
        "--work_root", str(tmp_path / "regime_work"))  # fmt: skip
  rebuilt = (regime / "README.md").read_text()  # The committed page has hand-written notes; the numbers agree.
  kept = open(os.path.join(RESULTS, "lspet_imagenet_regime", "README.md")).read()
  numbers = [line for line in kept.splitlines() if re.match(r"\| \d+ \| \d+\.\d \|", line)]  # per-epoch rows
  assert numbers and all(line in rebuilt for line in numbers), rebuilt[:2000]
  side = tmp_path / "side.md"
  run_benchmark("ssl_lspet_compare.py", "--out", str(side))
  assert side.read_text() == open(os.path.join(RESULTS, "ssl_lspet_side_by_side.md")).read()


def test_ssl_synthetic_reports_what_it_has(tmp_path):
  page = tmp_path / "ssl_synthetic.md"
  run_benchmark("ssl_synthetic.py", "--report_only", "--work_root", str(tmp_path / "work"), "--data_root",
        str(tmp_path / "data"), "--out", str(page))  # fmt: skip
  assert page.exists() and page.read_text().startswith("#"), page.read_text()[:500]
