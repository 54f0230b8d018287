"""benchmarks/gpu_check.py --smoke: the GPU check's every part runs on the CPU with tiny sizes, so the prepared
GPU command cannot rot while no GPU is around."""

import os
import subprocess
import sys

import pytest
from conftest import ROOT, shared_path


@pytest.mark.slow
def test_gpu_check_smoke_runs_every_part(tmp_path):
  shared_path("lspet", "joints.mat")  # Skips with a reason when the shared data is absent.
  shared_path("coco_mini", "annotations")
  out = str(tmp_path / "gpu_check.md")
  r = subprocess.run(
    [sys.executable, os.path.join(ROOT, "benchmarks", "gpu_check.py"), "--smoke", "--out", out],
    capture_output=True,
    text=True,
    timeout=3600,  # Only stops a hang; each part has its own cap (gpu_check.PARTS).
  )
  assert r.returncode == 0, r.stderr[-2000:]
  page = open(out).read()
  assert "did not finish" not in page, page
  # Every part left its rows: 2 step rows with a rate, 4 pipeline rows, the bottleneck, 2 replicas, a PCK.
  step_rows = [line for line in page.splitlines() if line.startswith("| resnet18 |")]
  assert len(step_rows) == 2 and not any("failed" in line for line in step_rows), page
  assert page.count("| labeled |") == 2 and page.count("| unlabeled |") == 2
  assert "| input pipeline |" in page or "| train step |" in page
  assert "supervised, 2 replicas:" in page
  pck_row = [line for line in page.splitlines() if line.startswith("| 64x64 | 20 | 10 |")]
  assert len(pck_row) == 1
  # The person-box part (issue 34): one PCK row per method, trained on labeled + unlabeled people from step 0.
  for method in ("supervised", "plus"):
    assert len([line for line in page.splitlines() if line.startswith(f"| {method} | 4 | 2 + 2 |")]) == 1, page
  assert r.stderr == "", r.stderr[-1000:]  # Quiet console: nothing but the table and the progress lines.
