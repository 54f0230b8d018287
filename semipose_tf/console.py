"""A quiet console for the scripts: TensorFlow's start-up lines and library warnings off unless ``--verbose``.

TensorFlow 2.21 writes its start-up lines (``oneDNN custom operations are on ...``, ``Could not find cuda
drivers ...``) through absl's C++ logging while it is being imported, before ``TF_CPP_MIN_LOG_LEVEL`` or any
Python logging setting can apply, so the only way to keep them off the console is to point file descriptor 2 away
while TensorFlow loads. :func:`quiet_start` does that, sets the log levels for everything after, and filters the
Python warnings that TensorFlow, Keras and absl raise about themselves. Errors still reach stderr: only the import
is silenced, and a failing import is re-run loudly so its message is seen.

Every script calls it first, before anything imports TensorFlow::

    from semipose_tf.console import quiet_start
    VERBOSE = quiet_start()          # reads --verbose from sys.argv; the script's argparse also lists it

This module imports nothing heavy.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import warnings

VERBOSE_FLAG = "--verbose"
VERBOSE_HELP = "show TensorFlow's own log lines and library warnings (hidden by default)"
# Warnings attributed to these packages are about the libraries themselves, not about the user's run.
_NOISY = r"(keras|tensorflow|tf_keras|absl|google\.protobuf|h5py|jax)(\.|$)"


@contextlib.contextmanager
def _stderr_to_devnull():
  sys.stderr.flush()
  saved = os.dup(2)
  devnull = os.open(os.devnull, os.O_WRONLY)
  try:
    os.dup2(devnull, 2)
    yield
  finally:
    os.dup2(saved, 2)
    os.close(devnull)
    os.close(saved)


_QUIET = False  # Set by a quiet start: native libraries' own log lines are hidden as well (quiet_native).


@contextlib.contextmanager
def quiet_native():
  """Hides what native code writes to stderr inside the block (LiteRT's converter prints its quantization
  settings, its interpreter the XNNPACK delegate it made), after a quiet start only.

  A no-op without one (library use, ``--verbose``). Python exceptions still reach the caller and are printed after
  the block, with stderr back.
  """
  if not _QUIET:
    yield
    return
  with _stderr_to_devnull():
    yield


def quiet_start(argv: list[str] | None = None) -> bool:
  """Silences TensorFlow's start-up and C++ log lines and library warnings unless ``--verbose`` is in ``argv``.

  Args:
    argv: The command line (default ``sys.argv``).

  Returns:
    Whether the run is verbose.
  """
  verbose = VERBOSE_FLAG in (sys.argv if argv is None else argv)
  if verbose:
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
    return True
  global _QUIET
  _QUIET = True
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # C++ INFO / WARNING / ERROR lines after the import.
  os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")
  warnings.filterwarnings("ignore", module=_NOISY)
  if "tensorflow" not in sys.modules:
    try:
      with _stderr_to_devnull():
        import tensorflow  # noqa: F401
    except Exception:
      # Import it again with stderr back, so whatever made it fail is shown (the first attempt's message is lost).
      sys.modules.pop("tensorflow", None)
      import tensorflow  # noqa: F401
  import absl.logging

  absl.logging.set_verbosity(absl.logging.ERROR)
  try:
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
  except Exception:  # pragma: no cover - only if TensorFlow is missing, which the import above reports.
    pass
  return False


def is_terminal(stream=None) -> bool:
  """Whether ``stream`` (stdout by default) is a terminal, where progress bars redraw in place; in a file or a
  pipe they would be kilobytes of carriage returns and colour codes."""
  stream = stream or sys.stdout
  try:
    return bool(stream.isatty())
  except (AttributeError, ValueError):  # A closed or replaced stream.
    return False


def fit_verbosity(verbose):
  """``keras.Model.fit``'s ``verbose`` for this console: ``"auto"`` is the progress bar on a terminal and one plain
  line per epoch elsewhere (Keras's "auto" draws the bar into files too)."""
  if verbose == "auto":
    return 1 if is_terminal() else 2
  return verbose


class Progress:
  """Progress of ``total`` units of work: Keras's bar on a terminal, else a plain line at every tenth and at the end.

  Args:
    total: How many units.
    unit: What a unit is ("image").
  """

  def __init__(self, total: int, unit: str):
    self.total, self.unit, self.bar, self.shown = max(1, int(total)), unit, None, 0
    self.start = time.perf_counter()
    if is_terminal():
      import keras

      self.bar = keras.utils.Progbar(total, unit_name=unit)

  def update(self, done: int) -> None:
    """``done`` units are finished (a running count)."""
    if self.bar is not None:
      self.bar.update(done)
      return
    tenth = min(done, self.total) * 10 // self.total  # 10 only when all is done.
    if tenth > self.shown:
      self.shown = tenth
      elapsed = time.perf_counter() - self.start
      print(f"  {done}/{self.total} {self.unit}s ({10 * tenth}%, {elapsed:.0f} s)", flush=True)


__all__ = ["VERBOSE_FLAG", "VERBOSE_HELP", "Progress", "fit_verbosity", "is_terminal", "quiet_native", "quiet_start"]


def error_text(e: BaseException) -> str:
  """An exception's first line without TensorFlow's graph decorations ("{{function_node ...}}", "[Op:SaveV2]")."""
  import re

  text = getattr(e, "strerror", None) or getattr(e, "message", None) or str(e) or type(e).__name__
  text = re.sub(r"\{\{[^}]*\}\}\s*", "", text.splitlines()[0] if text else "")
  return re.sub(r"\s*\[Op:[^\]]*\](\s*name:\s*\S*)?", "", text).strip()
