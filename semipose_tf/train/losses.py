"""JointsMSE, per sample, and the global-batch average used under distribution strategies."""

from __future__ import annotations

import tensorflow as tf


def joints_mse(pred: tf.Tensor, target: tf.Tensor, weights: tf.Tensor | None = None) -> tf.Tensor:
  """Per-sample JointsMSE: mean over joints and pixels of 0.5 * (w * (pred - target))^2.

  Args:
    pred: [B, h, w, K] predicted heatmaps.
    target: [B, h, w, K] target heatmaps.
    weights: [B, K] per-joint weights, or None for 1.

  Returns:
    [B] float32 losses.
  """
  diff = tf.cast(pred, tf.float32) - tf.cast(target, tf.float32)
  if weights is not None:
    diff = diff * tf.cast(weights, tf.float32)[:, None, None, :]
  return tf.reduce_mean(0.5 * tf.square(diff), axis=[1, 2, 3])


def global_average(per_sample: tf.Tensor) -> tf.Tensor:
  """Sum of per-sample losses / global batch size: the right per-replica loss when gradients are summed across
  replicas (a plain reduce_mean would multiply the effective learning rate by the replica count)."""
  return tf.nn.compute_average_loss(per_sample)
