"""Random affine augmentation parameters (the reference's scale / rotation / flip), drawn with stateless ops.

The same sampler serves the weak view in ``tf.data`` (flip allowed) and the strong view in the train step (no
flip, rotation with probability 0.8). Drawing from an explicit seed keeps a pipeline deterministic under parallel
``map`` and makes a train step reproducible per replica.
"""

from __future__ import annotations

import dataclasses

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
STRONG = AffineAugment(rotation_prob=0.8, flip_prob=0.0)
NONE = AffineAugment(scale_factor=0.0, rotation_factor=0.0, rotation_prob=0.0, flip_prob=0.0)


def sample_affine(seed: tf.Tensor, config: AffineAugment = WEAK, shape=()) -> dict[str, tf.Tensor]:
  """Draws affine parameters.

  Args:
    seed: [2] int32/int64 stateless seed.
    config: The distribution.
    shape: Batch shape of the draw.

  Returns:
    ``scale_mult`` [shape] float32 (multiplies the crop scale: > 1 zooms out), ``rotation`` [shape] float32
    degrees, ``flip`` [shape] bool.
  """
  seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 4, alg=ALG)
  sf, rf = config.scale_factor, config.rotation_factor
  scale = tf.random.stateless_normal(shape, seeds[0], alg=ALG) * sf + 1.0
  scale = tf.clip_by_value(scale, 1.0 - sf, 1.0 + sf)
  rot = tf.clip_by_value(tf.random.stateless_normal(shape, seeds[1], alg=ALG) * rf, -2.0 * rf, 2.0 * rf)
  rotate = tf.random.stateless_uniform(shape, seeds[2], alg=ALG) < config.rotation_prob
  flip = tf.random.stateless_uniform(shape, seeds[3], alg=ALG) < config.flip_prob
  return {"scale_mult": scale, "rotation": tf.where(rotate, rot, 0.0), "flip": flip}
