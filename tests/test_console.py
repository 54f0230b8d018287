"""The scripts speak plainly: no TensorFlow / absl start-up lines or library warnings unless --verbose."""

import glob
import os
import re
import subprocess
import sys

import pytest
from conftest import ROOT, shared_path

SCRIPTS = sorted(glob.glob(os.path.join(ROOT, "scripts", "*.py")))
# The benchmarks a user runs (not results_io, a module, nor reference_step, which needs PyTorch).
SCRIPTS += [
  os.path.join(ROOT, "benchmarks", f"{name}.py")
  for name in ("gpu_check", "input_pipeline", "models", "ssl_lspet", "ssl_synthetic", "train_step")
]
TF_LINE = re.compile(r"^[IWEF]\d{4} |absl::InitializeLog|oneDNN|cuda|Warning", re.M)


def _run(*args):
  env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "ABSL_MIN_LOG_LEVEL")}
  return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=ROOT)


@pytest.mark.parametrize("script", SCRIPTS, ids=[os.path.relpath(s, ROOT) for s in SCRIPTS])
def test_help_prints_only_the_help(script):
  r = _run(script, "--help")
  assert r.returncode == 0
  assert r.stderr == "", r.stderr[:500]
  assert r.stdout.startswith("usage:") and not TF_LINE.search(r.stdout)
  assert "--verbose" in r.stdout


@pytest.mark.slow
def test_verbose_brings_back_what_tensorflow_prints():
  raw = _run("-c", "import tensorflow").stderr
  shown = _run(os.path.join(ROOT, "scripts", "make_tfrecords.py"), "--verbose", "--help").stderr  # Loads TF.
  # Whatever TensorFlow prints on its own import on this machine (oneDNN / CUDA lines on x86 CPUs) comes back.
  for line in raw.splitlines():
    if line.strip():
      assert re.sub(r"\d+", "0", line) in re.sub(r"\d+", "0", shown)


def test_a_bad_argument_is_one_plain_line():
  r = _run(
    os.path.join(ROOT, "scripts", "evaluate.py"),
    "lsp",
    "--predictions",
    "/no/such/file.npy",
    "--joints",
    "/no/such/joints.mat",
  )
  assert r.returncode != 0
  assert r.stderr.strip().count("\n") == 0 and "/no/such/file.npy" in r.stderr, r.stderr[:500]


def test_native_log_lines_are_hidden_only_after_a_quiet_start(capfd, monkeypatch):
  """What native code writes to file descriptor 2 (LiteRT's converter and interpreter) inside quiet_native."""
  from semipose_tf import console

  monkeypatch.setattr(console, "_QUIET", True)
  with console.quiet_native():
    os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
  with pytest.raises(ValueError, match="still raised"):
    with console.quiet_native():
      raise ValueError("still raised")
  monkeypatch.setattr(console, "_QUIET", False)  # Library use or --verbose: everything shows.
  with console.quiet_native():
    os.write(2, b"shown\n")
  os.write(2, b"after\n")  # Descriptor 2 is back after each block.
  assert capfd.readouterr().err == "shown\nafter\n"


@pytest.mark.slow
def test_output_written_to_a_file_is_plain_lines_with_each_epochs_metrics_once(tmp_path):
  """Training and conversion with stdout not a terminal (a log file, CI): no carriage returns or colour codes, one
  plain line per epoch, each evaluation metric printed once per epoch, plain progress lines from the converter."""
  from training_data import make_layout

  data = make_layout(str(tmp_path / "data"))
  params = [
    "INPUT_SIZE = (64, 64)", "build_pose_model.width = 8", "build_pose_model.deconv_filters = (16, 16, 16)",
    "build_pose_model.pretrained = None", "DataConfig.labeled_batch_size = 2", "MethodConfig.method = 'supervised'",
    "FitConfig.epochs = 2", "FitConfig.steps_per_epoch = 3", "DataConfig.val_dir = None",
    "FitConfig.log_every_steps = 2",
  ]  # fmt: skip
  cmd = [sys.executable, os.path.join(ROOT, "scripts", "train.py"), "--gin_file=lspet_1k_supervised.gin",
         f"--data_root={data}", f"--work_dir={tmp_path / 'run'}", *[f"--gin_param={p}" for p in params]]  # fmt: skip
  r = subprocess.run(cmd, capture_output=True, text=True)
  assert r.returncode == 0, r.stderr[-3000:]
  assert "\r" not in r.stdout and "\x1b[" not in r.stdout, r.stdout[:2000]
  assert r.stdout.count("val_PCK@0.2: ") == 2, r.stdout  # Two epochs, each metric once.
  assert len([line for line in r.stdout.splitlines() if line.startswith("3/3 - ")]) == 2, r.stdout
  lspet = shared_path("lspet")
  r = subprocess.run(
    [sys.executable, os.path.join(ROOT, "scripts", "make_tfrecords.py"), "lsp", "--joints",
     os.path.join(lspet, "joints.mat"), "--images", os.path.join(lspet, "images"), "--out", str(tmp_path / "lsp"),
     "--sets", "eval", "--num_test", "40"], capture_output=True, text=True)  # fmt: skip
  assert r.returncode == 0, r.stderr[-2000:]
  assert "\r" not in r.stdout and "\x1b[" not in r.stdout, r.stdout[:2000]
  assert "  40/40 images (100%" in r.stdout and len(r.stdout) < 2000, r.stdout
