"""The strong affine of the student branch: a random rotation and scale about the crop centre, no flip.

It is applied to the (masked) weak view at input resolution and to the teacher heatmaps at heatmap resolution,
so the teacher's heatmaps become the student's targets (the reference's order: cutout, then affine).
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from semipose_tf import codec
from semipose_tf.augment import replica_random
from semipose_tf.augment.affine import STRONG, AffineAugment
from semipose_tf.augment.replica_random import ALG


def strong_affines(seed: tf.Tensor, batch: tf.Tensor, input_size: Sequence[int], heatmap_size: Sequence[int],
                   config: AffineAugment = STRONG) -> tuple[tf.Tensor, tf.Tensor, dict]:
  """Draws per-sample strong affines.

  Returns:
    (input-pixel matrices [B, 2, 3], heatmap-pixel matrices [B, 2, 3], the drawn parameters).
  """
  seeds = tf.random.experimental.stateless_split(seed, 3, alg=ALG)
  sf, rf = config.scale_factor, config.rotation_factor
  scale = tf.clip_by_value(replica_random.normal(seeds[0], batch) * sf + 1.0, 1.0 - sf, 1.0 + sf)
  rot = tf.clip_by_value(replica_random.normal(seeds[1], batch) * rf, -2.0 * rf, 2.0 * rf)
  rot = tf.where(replica_random.uniform(seeds[2], batch) < config.rotation_prob, rot, 0.0)

  def about_centre(size):
    h, w = float(size[0]), float(size[1])
    centre = tf.broadcast_to(tf.constant([w / 2, h / 2]), [batch, 2])
    # Scale in pixel_std units so that the crop spans `scale` times the view: zoom = 1 / scale.
    crop_scale = tf.stack([w * scale, h * scale], -1) / codec.PIXEL_STD
    return codec.crop_affine(centre, crop_scale, rot, size)

  return about_centre(input_size), about_centre(heatmap_size), {"scale": scale, "rotation": rot}


def apply_strong(images: tf.Tensor, heatmaps: tf.Tensor, m_input: tf.Tensor, m_heatmap: tf.Tensor):
  """Warps images [B, H, W, C] and heatmaps [B, h, w, K] with their matrices (XLA-compatible resampling)."""
  warped = codec.resample_affine(images, m_input, images.shape[1:3])
  targets = codec.resample_affine(heatmaps, m_heatmap, heatmaps.shape[1:3])
  return warped, targets
