"""Random affine augmentation parameters (the reference's scale / rotation / flip), drawn with stateless ops.

One sampler, :func:`sample_affine`, serves the weak view in ``tf.data`` (flip allowed; TensorFlow's stateless
draws per example) and the strong view in the train step (no flip, rotation with probability 0.8; per-sample draws
made for the global batch and sliced per replica, passed in from ``augment/replica_random.py``). Drawing from an
explicit seed keeps a pipeline deterministic under parallel ``map`` and makes a train step reproducible per
replica.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import tensorflow as tf

from semipose_tf.augment.replica_random import ALG


@dataclasses.dataclass(frozen=True)
class AffineAugment:
  """Distribution of one random affine.

  Attributes:
    scale_factor: sf; the scale multiplier is clip(N(1, sf), 1 - sf, 1 + sf).
    rotation_factor: rf degrees; the rotation is clip(N(0, rf), -2 rf, 2 rf) with probability rotation_prob.
    rotation_prob: Probability of a non-zero rotation.
    flip_prob: Probability of a horizontal flip.
  """

  scale_factor: float = 0.25
  rotation_factor: float = 30.0
  rotation_prob: float = 0.6
  flip_prob: float = 0.5


WEAK = AffineAugment()
NONE = AffineAugment(scale_factor=0.0, rotation_factor=0.0, rotation_prob=0.0, flip_prob=0.0)


Draw = Callable[[tf.Tensor, object], tf.Tensor]  # (seed [2], shape) -> float32 draws of that shape.


def _stateless_normal(seed, shape):
  return tf.random.stateless_normal(shape, seed, alg=ALG)


def _stateless_uniform(seed, shape):
  return tf.random.stateless_uniform(shape, seed, alg=ALG)


def sample_affine(
  seed: tf.Tensor,
  config: AffineAugment = WEAK,
  shape=(),
  normal: Draw = _stateless_normal,
  uniform: Draw = _stateless_uniform,
) -> dict[str, tf.Tensor]:
  """Draws affine parameters.

  Args:
    seed: [2] int32/int64 stateless seed.
    config: The distribution.
    shape: Shape of the draw (the train step passes its local batch size).
    normal, uniform: The random source, ``f(seed, shape)``: TensorFlow's stateless draws by default; the train
      step passes ``replica_random.normal`` / ``uniform`` (global-batch draws sliced per replica).

  Returns:
    ``scale_mult`` [shape] float32 (multiplies the crop scale: > 1 zooms out), ``rotation`` [shape] float32
    degrees, ``flip`` [shape] bool.
  """
  seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 4, alg=ALG)
  sf, rf = config.scale_factor, config.rotation_factor
  scale = tf.clip_by_value(normal(seeds[0], shape) * sf + 1.0, 1.0 - sf, 1.0 + sf)
  rot = tf.clip_by_value(normal(seeds[1], shape) * rf, -2.0 * rf, 2.0 * rf)
  rotate = uniform(seeds[2], shape) < config.rotation_prob
  flip = uniform(seeds[3], shape) < config.flip_prob
  return {"scale_mult": scale, "rotation": tf.where(rotate, rot, 0.0), "flip": flip}
