"""Shared fixtures: the real data in ../shared/data (skipped with a reason when absent) and small synthetic sets."""

import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.environ.get("SEMIPOSE_SHARED_DATA", os.path.join(os.path.dirname(ROOT), "shared", "data"))


def shared_path(*parts: str) -> str:
  """Path under ../shared/data; skips the test with a reason when it is absent."""
  path = os.path.join(SHARED_DATA, *parts)
  if not os.path.exists(path):
    pytest.skip(f"real test data not found at {path} (set SEMIPOSE_SHARED_DATA or place shared/data beside the repo)")
  return path


@pytest.fixture(scope="session")
def synthetic_coco(tmp_path_factory):
  """A tiny synthetic COCO-format dataset: (annotation json, image dir) of 12 train images at 160x200."""
  from semipose_tf.synthetic import generate, render

  out = str(tmp_path_factory.mktemp("synthetic"))
  files = generate.generate(
    out, {"train": 12}, seed=3, config=render.SyntheticConfig(image_size=(160, 200)), workers=1, verbose=False
  )
  return files["train"], os.path.join(out, "train")


@pytest.fixture(scope="session")
def coco_mini_sets(tmp_path_factory):
  """coco_mini train converted to labeled (first 40) + unlabeled sets; returns the output dir."""
  from semipose_tf.conversion import convert, sources
  from semipose_tf.keypoints import COCO17

  ann = shared_path("coco_mini", "annotations", "person_keypoints_train2017.json")
  out = str(tmp_path_factory.mktemp("coco_mini"))
  src = sources.load_coco(ann, shared_path("coco_mini", "train2017"), COCO17)
  convert.convert(src, out, ("labeled", "unlabeled"), num_labeled=40, verbose=False)
  return out


def pytest_collection_modifyitems(config, items):
  """The slow tests first, each group in its collection order.

  Under README's ``-n 2 --dist worksteal`` the long tests (a minute or more each) then start at once, and the fast
  ones fill in around them; collected alphabetically, the longest ones came last and one process finished minutes
  before the other."""
  items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def run_benchmark(*args: str, timeout: int = 600) -> str:
  """stdout of ``python benchmarks/<args>`` in a fresh process, run as its docstring says (from the checkout, which
  ``results_io.require_checkout`` asks for); fails with its stderr's end on a non-zero exit."""
  r = subprocess.run(
    [sys.executable, os.path.join(ROOT, "benchmarks", args[0]), *args[1:]],
    capture_output=True,
    text=True,
    timeout=timeout,
    cwd=ROOT,
    env={**os.environ, "PYTHONPATH": ROOT},
  )
  assert r.returncode == 0, f"{args}: {r.stderr[-2000:]}"
  return r.stdout


_SCRIPTS: dict = {}


def run_script(script: str, *args: str, cwd: str | None = None) -> "subprocess.CompletedProcess":
  """``python <script> <args>`` (a path under the repository) in this process, as ``subprocess.run`` reports it.

  A new process costs a TensorFlow start (several seconds on two cores) before the script does anything; the
  tests of what a script says and writes call its ``main(argv)`` here instead. Its exit code, stdout and stderr
  come back as a ``CompletedProcess``: ``SystemExit("text")`` is code 1 with the text on stderr, an uncaught
  exception code 1 with its traceback, as Python would print them. Gin's bindings are cleared after each call. The
  tests that a process starts quietly (tests/test_console.py) keep their subprocesses.
  """
  import contextlib
  import importlib.util
  import io
  import subprocess
  import traceback

  import gin

  path = os.path.join(ROOT, script)
  module = _SCRIPTS.get(path)
  if module is None:
    spec = importlib.util.spec_from_file_location(f"_script_{len(_SCRIPTS)}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    _SCRIPTS[path] = module
  out, err = io.StringIO(), io.StringIO()
  before, argv = os.getcwd(), sys.argv
  sys.argv = [path, *args]  # What the script records as its command (manifests, logs).
  try:
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
      if cwd:
        os.chdir(cwd)
      try:
        code = module.main(list(args))
      except SystemExit as e:
        code = e.code
        if isinstance(code, str):
          print(code, file=sys.stderr)
          code = 1
      except Exception:  # noqa: BLE001  (what the interpreter would do with it)
        traceback.print_exc()
        code = 1
  finally:
    os.chdir(before)
    sys.argv = argv
    gin.clear_config()
  return subprocess.CompletedProcess([script, *args], code or 0, out.getvalue(), err.getvalue())
