"""Bit-for-bit repeatable training on one machine: op determinism; on a CPU also oneDNN off, one intra-op thread
and no Grappler rewrites.

Op determinism (``tf.config.experimental.enable_op_determinism``) fixes the order of parallel reductions of the
kernels TensorFlow knows to be nondeterministic (the GPU ones), and the seed fixes every random draw. On a CPU-only
machine under load that was not enough (benchmarks/results/determinism.md, the demo's plus phase from one
checkpoint, 30-40 steps, with a busy process beside it):

* TensorFlow's oneDNN kernels (on by default on x86 since TF 2.9) gave different weights in 3 of 3 processes, even
  with one intra-op thread: they are chosen when TensorFlow is imported, so ``scripts/train.py`` restarts itself with
  ``TF_ENABLE_ONEDNN_OPTS=0`` (:func:`restart_argv`) and the library warns when asked for determinism with them on;
* with oneDNN off and TensorFlow's default thread pools, the logged losses still differed between processes, and
  the weights in 2 of 3 with one inter-op thread; with one intra-op thread 5 of 5 processes gave the same losses
  and weights. So a deterministic CPU run also computes each op on one thread (:func:`enable`; the inter-op pool
  still runs independent ops side by side). On a machine with a GPU the step runs there and op determinism
  covers it: the CPU keeps its threads.
* that still left whole runs through ``model.fit`` differing (two demos at once, and two 50-step plus phases from
  one checkpoint): Grappler, TensorFlow's graph optimizer, rewrote the step's graph differently in different
  processes (with it off, the same runs repeat). Its passes are not covered by op determinism; TensorFlow's own
  determinism RFC names Grappler as the one nondeterministic part left. So a deterministic CPU run also turns
  Grappler off (``disable_meta_optimizer``): the graph runs as traced.

The price on the 2-core development machine is on the page above (Eigen's kernels on one thread per op instead of
oneDNN's on two); :func:`enable` must run before TensorFlow's runtime starts (the script does it first thing).
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
  """Turns on TensorFlow's op determinism for the process and, on a machine without a GPU, one intra-op thread and
  no Grappler rewrites; warns in one line if oneDNN is on or the thread pool was already started.

  Process-wide, as TensorFlow makes it; call it before TensorFlow runs its first op.
  """
  import tensorflow as tf

  tf.config.experimental.enable_op_determinism()
  if not tf.config.list_physical_devices("GPU"):
    # Read when a tf.function is first run, so it holds for every step function made after this call.
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    try:
      tf.config.threading.set_intra_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow's runtime has started with more threads: say so, do not fail the run.
      warnings.warn(
        "RuntimeConfig.deterministic = True: TensorFlow's runtime had started before determinism was asked for, "
        "so CPU ops keep several threads and may differ between runs on a loaded machine; call "
        "semipose_tf.train.determinism.enable() first (scripts/train.py does)",
        RuntimeWarning,
        stacklevel=2,
      )
  if onednn_on():
    warnings.warn(
      "RuntimeConfig.deterministic = True with oneDNN on: CPU gradients may differ between runs on a loaded machine; "
      f"set {ONEDNN_ENV}=0 before TensorFlow is imported (scripts/train.py does) for bit-for-bit repeats",
      RuntimeWarning,
      stacklevel=2,
    )


def grappler_off() -> bool:
  """Whether TensorFlow's graph optimizer (Grappler) is off in this process (deterministic CPU runs)."""
  import tensorflow as tf

  return bool(tf.config.optimizer.get_experimental_options().get("disable_meta_optimizer", False))


def intra_op_threads() -> int:
  """The intra-op thread count this process asked for (0: TensorFlow's default, one per core)."""
  import tensorflow as tf

  return int(tf.config.threading.get_intra_op_parallelism_threads())
