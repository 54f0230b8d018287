"""The strong affine of the student branch: a random rotation and scale about the crop centre, no flip.

It is applied to the (masked) weak view at input resolution and to the teacher heatmaps at heatmap resolution,
so the teacher's heatmaps become the student's targets (the reference's order: cutout, then affine).
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from semipose_tf import codec
from semipose_tf.augment import replica_random
from semipose_tf.augment.affine import AffineAugment, sample_affine
from semipose_tf.method_config import StrongView


def strong_affines(
  seed: tf.Tensor, batch: tf.Tensor, input_size: Sequence[int], heatmap_size: Sequence[int], view: StrongView
) -> tuple[tf.Tensor, tf.Tensor, dict]:
  """Draws per-sample strong affines (the distribution of ``view``, never flipped).

  Returns:
    (input-pixel matrices [B, 2, 3], heatmap-pixel matrices [B, 2, 3], the drawn parameters).
  """
  config = AffineAugment(
    scale_factor=view.scale_factor,
    rotation_factor=view.rotation_factor,
    rotation_prob=view.rotation_prob,
    flip_prob=0.0,
  )
  p = sample_affine(seed, config, batch, normal=replica_random.normal, uniform=replica_random.uniform)
  scale, rot = p["scale_mult"], p["rotation"]
  return (
    codec.zoom_affine(1.0 / scale, rot, input_size),
    codec.zoom_affine(1.0 / scale, rot, heatmap_size),
    {"scale": scale, "rotation": rot},
  )


def apply_strong(images: tf.Tensor, heatmaps: tf.Tensor, m_input: tf.Tensor, m_heatmap: tf.Tensor):
  """Warps images [B, H, W, C] and heatmaps [B, h, w, K] with their matrices (XLA-compatible resampling)."""
  warped = codec.resample_affine(images, m_input, images.shape[1:3])
  targets = codec.resample_affine(heatmaps, m_heatmap, heatmaps.shape[1:3])
  return warped, targets
