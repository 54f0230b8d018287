"""The scripts speak plainly: no TensorFlow / absl start-up lines or library warnings unless --verbose."""

import glob
import os
import re
import subprocess
import sys

import pytest
from conftest import ROOT

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
