"""Bit-for-bit repeatable training on one machine: TensorFlow's op determinism, and oneDNN off on the CPU.

Op determinism (``tf.config.experimental.enable_op_determinism``) fixes the order of parallel reductions, but
TensorFlow's oneDNN kernels on x86 CPUs (on by default since TF 2.9) are not covered by it: their convolution
gradients depend on how the thread pool happens to be scheduled, so a `plus` step's gradients differ from call to
call on a loaded machine while every forward pass and loss is identical (benchmarks/results/determinism.md: 3 of 11
calls on fixed weights and batch differed, 5 of 5 processes gave 5 different weights after 20 steps; with
``TF_ENABLE_ONEDNN_OPTS=0``, 0 of 15 and 4 of 4 identical). oneDNN is chosen when TensorFlow is imported, so a
process cannot switch it off for itself later: ``scripts/train.py`` restarts itself with it off
(:func:`restart_argv`) and the library warns when asked for determinism with it on (:func:`enable`).

The price is TensorFlow's Eigen kernels instead of oneDNN's: on the 2-core development machine a plus step of the
demo network took about 2.4-3x as long (the page above has the table).
"""

from __future__ import annotations

import os
import sys
import warnings

ONEDNN_ENV = "TF_ENABLE_ONEDNN_OPTS"


def onednn_on() -> bool:
  """Whether this process's TensorFlow runs its CPU ops through oneDNN (decided when TensorFlow was imported)."""
  try:
    from tensorflow.python.util import _pywrap_util_port

    return bool(_pywrap_util_port.IsMklEnabled())
  except (ImportError, AttributeError):  # pragma: no cover - a TensorFlow build without the query.
    return os.environ.get(ONEDNN_ENV, "") not in ("0", "false", "False")


def restart_argv(deterministic: bool) -> list[str] | None:
  """The command that reruns this script with oneDNN off, or None when no restart is needed.

  None when the run is not deterministic, when oneDNN is already off, or when the user set ``TF_ENABLE_ONEDNN_OPTS``
  themselves (their choice is kept; :func:`enable` then warns).

  Args:
    deterministic: The run's ``RuntimeConfig.deterministic``.
  """
  if not deterministic or ONEDNN_ENV in os.environ or not onednn_on():
    return None
  return [sys.executable, *sys.argv]


def enable() -> None:
  """Turns on TensorFlow's op determinism for the process; warns in one line if oneDNN is on.

  Seeds alone fix every random draw (stateless step seeds, seeded tf.data, per-layer initializers); op determinism
  also fixes the order of parallel reductions (GPU kernels, multi-threaded CPU ones). Process-wide, as TensorFlow
  makes it.
  """
  import tensorflow as tf

  tf.config.experimental.enable_op_determinism()
  if onednn_on():
    warnings.warn(
      "RuntimeConfig.deterministic = True with oneDNN on: CPU gradients may differ between runs on a loaded machine; "
      f"set "
      f"{ONEDNN_ENV}=0 before TensorFlow is imported (scripts/train.py does) for bit-for-bit repeats",
      RuntimeWarning,
      stacklevel=2,
    )
