"""Bit-for-bit repeatable training on one machine: op determinism and, on a CPU, Grappler off.

Op determinism (``tf.config.experimental.enable_op_determinism``) fixes the order of parallel reductions of the
kernels TensorFlow knows to be nondeterministic (the GPU ones), and the seed fixes every random draw. On a CPU-only
machine that was not enough: the same seeded ``plus`` run gave different weights in different processes
(benchmarks/results/determinism.md). What differed was Grappler, TensorFlow's graph optimizer: it rewrote the
step's graph one way in some processes and another way in others, so the same step ran different arithmetic.
Op determinism does not cover it (TensorFlow's determinism RFC names Grappler as the one nondeterministic part
left outside ops). With Grappler off, 50 steps of the demo's ``plus`` phase through ``model.fit`` repeated bit for
bit in pairs of processes run at once beside other work, with oneDNN on or off and one intra-op thread or the
default pool alike, and so did whole short runs through ``scripts/train.py``. So :func:`enable` turns Grappler off
(``disable_meta_optimizer``) on machines without a GPU, and nothing else: the CPU keeps oneDNN's kernels and its
threads. (An earlier version also turned oneDNN off and ran each op on one thread, at 2-3x the step time; with
Grappler off neither changes whether a run repeats.)

On a machine with a GPU only op determinism is set, as before: Grappler's layout and fusion passes matter there
and its effect on repeats was not measured on a GPU.
"""

from __future__ import annotations


def enable() -> None:
  """Turns on TensorFlow's op determinism for the process and, on a machine without a GPU, turns Grappler off.

  Process-wide, as TensorFlow makes it. Grappler's switch is read when a ``tf.function`` first runs, so call this
  before training starts (``Task.build`` does).
  """
  import tensorflow as tf

  tf.config.experimental.enable_op_determinism()
  if not tf.config.list_physical_devices("GPU"):
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})


def grappler_off() -> bool:
  """Whether TensorFlow's graph optimizer (Grappler) is off in this process (deterministic CPU runs)."""
  import tensorflow as tf

  return bool(tf.config.optimizer.get_experimental_options().get("disable_meta_optimizer", False))
