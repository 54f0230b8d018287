"""Mixup of the unlabeled batch at the image or a feature level (paper Eq. 2-4)."""

from __future__ import annotations

from typing import Sequence

import keras
import tensorflow as tf

from semipose_tf.augment.replica_random import hash_uniform


def sample_lambda(seed: tf.Tensor, alpha: float = 1.0, fixed: float | None = None) -> tf.Tensor:
  """lambda ~ Beta(alpha, alpha) from a stateless seed (the same on every replica), or ``fixed``.

  Drawn by inverting the regularized incomplete beta function (bisection on ``tf.math.betainc``) rather than from
  two Gamma variates: the Gamma sampler has no XLA kernel, and this keeps the step compilable.
  """
  if fixed is not None:
    return tf.constant(float(fixed))
  u = hash_uniform(seed, [])
  if alpha == 1.0:  # Beta(1, 1) is uniform.
    return u
  a = tf.constant(float(alpha))
  lo, hi = tf.constant(0.0), tf.constant(1.0)
  for _ in range(30):  # 2^-30 < 1e-9.
    mid = 0.5 * (lo + hi)
    below = tf.math.betainc(a, a, mid) < u
    lo, hi = tf.where(below, mid, lo), tf.where(below, hi, mid)
  return 0.5 * (lo + hi)


def sample_permutation(seed: tf.Tensor, batch: tf.Tensor) -> tf.Tensor:
  """A random permutation of the local batch: the mixing partners (they must live on the same replica)."""
  return tf.argsort(hash_uniform(seed, tf.reshape(batch, [1])))


def mix(features, lam: tf.Tensor, perm: tf.Tensor):
  """``lam * x + (1 - lam) * x[perm]`` for a tensor or a nest of tensors (HRNet branches)."""

  def one(x):
    lam_x = tf.cast(lam, x.dtype)
    return lam_x * x + (1 - lam_x) * tf.gather(x, perm)

  return keras.tree.map_structure(one, features)


def mixed_forward(net, images: tf.Tensor, lam: tf.Tensor, perm: tf.Tensor, where: tf.Tensor, locations: Sequence[str]):
  """The network (a ``StagedPoseModel``) in training mode on ``images``, with the batch mixed at
  ``locations[where]``: the image, or the input of a named stage (the paper's "before layer3").

  Every candidate location is visited and its mix is selected with ``tf.where``, so the step has no control flow:
  the gradient of ``tf.switch_case`` would make every branch output the intermediates of all the others (zeros
  where not taken), a full set of activations per candidate location. Values and gradients are the same.

  Args:
    net: The network; its stages run one after another.
    images: [B, H, W, 3] unlabeled weak views.
    lam: Scalar mixing weight.
    perm: [B] mixing partners.
    where: Scalar int32 index into ``locations``.
    locations: Split points of ``net`` ("image" or stage names).

  Returns:
    [B, h, w, K] heatmaps of the mixed batch.
  """
  positions = [0 if loc == "image" else net.stage_names.index(loc) for loc in locations]
  x = images
  for i, stage in enumerate(net.stages()):
    for j in (j for j, p in enumerate(positions) if p == i):
      chosen = tf.equal(where, j)
      x = keras.tree.map_structure(lambda t, m, c=chosen: tf.where(c, m, t), x, mix(x, lam, perm))
    x = stage(x, training=True)
  return x
