"""Choosing a tf.distribute strategy: one device, MirroredStrategy (several GPUs), or multi-worker (TF_CONFIG).

Multi-worker: start the same command on every host with ``TF_CONFIG`` set, e.g. for two hosts::

  TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}' \\
      python scripts/train.py --gin_file=coco_1k.gin --gin_param='RuntimeConfig.strategy="multi_worker"'

(index 1 on the second host). Worker 0 is the chief: it writes the checkpoints, TensorBoard logs and backups in
the work directory; the other workers write theirs to ``<work_dir>/worker_<i>``.
"""

from __future__ import annotations

import json
import os

import keras
import tensorflow as tf

STRATEGIES = ("auto", "one", "mirrored", "multi_worker")


def make_strategy(kind: str = "auto") -> tf.distribute.Strategy:
  """Returns the strategy for ``kind``.

  "auto": MultiWorkerMirroredStrategy when TF_CONFIG names several workers, MirroredStrategy when several GPUs
  are visible, else the default (one device). "one": the default strategy. "mirrored": MirroredStrategy over the
  visible GPUs (or the logical CPUs when there is no GPU). "multi_worker": MultiWorkerMirroredStrategy from
  TF_CONFIG.
  """
  if kind not in STRATEGIES:
    raise ValueError(f"strategy must be one of {STRATEGIES}, got {kind!r}")
  if kind == "auto":
    if num_workers() > 1:
      kind = "multi_worker"
    elif len(tf.config.list_logical_devices("GPU")) > 1:
      kind = "mirrored"
    else:
      kind = "one"
  if kind == "one":
    return tf.distribute.get_strategy()
  if kind == "mirrored":
    gpus = tf.config.list_logical_devices("GPU")
    devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
    return tf.distribute.MirroredStrategy(devices)
  if "TF_CONFIG" not in os.environ:
    raise ValueError("strategy 'multi_worker' needs TF_CONFIG (see semipose_tf/train/distribute.py)")
  return tf.distribute.MultiWorkerMirroredStrategy()


def num_workers() -> int:
  try:
    cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
  except json.JSONDecodeError as e:
    raise ValueError(f"TF_CONFIG is not valid JSON: {e}") from None
  return len(cluster.get("worker", [])) + len(cluster.get("chief", []))


def worker_index() -> int:
  """This worker's index (0 for the chief, or without TF_CONFIG)."""
  task = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {})
  if task.get("type") == "chief":
    return 0
  return int(task.get("index", 0)) + (
    1 if "chief" in json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {}) else 0
  )


def is_chief() -> bool:
  return worker_index() == 0


def reducible_logs(logs: dict) -> dict:
  """Under MultiWorkerMirroredStrategy Keras reduces logs with ``strategy.reduce("MEAN", v, axis=0)``, which
  needs a batch axis: give the scalars one (the mean of one value per replica is the scalar again)."""
  if isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy):
    return {k: tf.reshape(v, [1]) for k, v in logs.items()}
  return logs


def set_synchronized_batch_norm(model: keras.Model, enabled: bool = True) -> int:
  """Switches every BatchNormalization layer of a model to synchronized (cross-replica) statistics; returns how
  many it switched."""
  n = 0
  # Private Keras API, kept on purpose: Keras 3 has no public way to walk every nested layer (``model.layers`` stops
  # at the first level of a subclassed model such as our backbones). tests/test_keras_private.py fails loudly if
  # Keras changes it.
  for layer in model._flatten_layers(include_self=False, recursive=True):
    if isinstance(layer, keras.layers.BatchNormalization):
      layer.synchronized = enabled
      n += 1
  return n
