"""Joint cutout and the adaptive mask count (paper Algorithm 1), as graph functions of batched tensors."""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from semipose_tf.augment import replica_random
from semipose_tf.augment.replica_random import ALG
from semipose_tf.method_config import CUTOUT_REFERENCE_SIZE, Masking


def adaptive_mask_count(heatmaps: tf.Tensor, masking: Masking) -> tf.Tensor:
  """How many joints to mask per sample, from the teacher's heatmaps (Algorithm 1).

  R_j = max of heatmap j; r_j = (Hmax - R_j) / (Hmax - Hmin) (all 0 when Hmax == Hmin); n = #{j: r_j < gamma};
  num = clip(floor(n * m / K), m_min, m); a sample with Hmax < tau (extremely hard) gets m_min. Confident (easy)
  samples get more masks, hard ones fewer.

  Args:
    heatmaps: [B, h, w, K] teacher heatmaps.
    masking: gamma, m = ``mask_max``, m_min = ``mask_min`` and tau (:class:`~semipose_tf.method_config.Masking`).

  Returns:
    [B] int32 counts in [m_min, m].
  """
  gamma, m, m_min, tau = masking.gamma, masking.mask_max, masking.mask_min, masking.tau
  heatmaps = tf.cast(heatmaps, tf.float32)
  k = tf.shape(heatmaps)[-1]
  response = tf.reduce_max(heatmaps, axis=[1, 2])  # [B, K]
  h_max = tf.reduce_max(response, axis=-1, keepdims=True)
  h_min = tf.reduce_min(response, axis=-1, keepdims=True)
  spread = h_max - h_min
  r = tf.where(spread > 0, (h_max - response) / tf.where(spread > 0, spread, 1.0), 0.0)
  n = tf.reduce_sum(tf.cast(r < gamma, tf.int32), axis=-1)
  num = tf.clip_by_value(n * m // k, m_min, m)
  return tf.where(h_max[:, 0] < tau, m_min, num)


def fixed_mask_count(batch_size: tf.Tensor, count: int) -> tf.Tensor:
  """[B] int32 filled with ``count`` (the "single" baseline's ``Masking.fixed_count``)."""
  return tf.fill([batch_size], tf.constant(count, tf.int32))


def select_joints(scores: tf.Tensor, num: tf.Tensor) -> tf.Tensor:
  """[B, K] bool: for each sample, the ``num`` joints with the highest random ``scores`` (distinct, uniform)."""
  rank = tf.argsort(tf.argsort(scores, axis=-1, direction="DESCENDING"), axis=-1)
  return rank < num[:, None]


def joint_cutout(
  images: tf.Tensor,
  centers: tf.Tensor,
  num: tf.Tensor,
  seed: tf.Tensor,
  masking: Masking,
  reference_size: Sequence[int] = CUTOUT_REFERENCE_SIZE,
  fill_value: float = 0.0,
):
  """Masks ``num`` random joints per image with rectangles centred near the joints (Xie et al.'s joint cutout).

  Each chosen joint gets a rectangle centred at its position plus N(0, ``masking.jitter``) px, with half-width
  and half-height drawn independently from the integers ``masking.half_size[0]..[1]``; sizes and jitter are given
  for ``reference_size`` (the paper's 256x192) and scale with the actual input size.

  Args:
    images: [B, H, W, C] normalized images (fill 0 = the dataset mean colour).
    centers: [B, K, 2] joint positions (x, y) in input pixels (the teacher's argmax).
    num: [B] int32 joints to mask.
    seed: [2] stateless seed of this step.
    masking: The rectangles' ``jitter`` and ``half_size``.
    reference_size, fill_value: As described.

  Returns:
    (masked images [B, H, W, C], boxes [B, K, 4] (cx, cy, half_w, half_h) in input pixels, selected [B, K] bool).
  """
  jitter_std, half_size = masking.jitter, masking.half_size
  shape = tf.shape(images)
  b, h, w = shape[0], shape[1], shape[2]
  k = tf.shape(centers)[1]
  sx = tf.cast(w, tf.float32) / reference_size[1]
  sy = tf.cast(h, tf.float32) / reference_size[0]
  seeds = tf.random.experimental.stateless_split(seed, 3, alg=ALG)
  selected = select_joints(replica_random.uniform(seeds[0], b, [k]), num)
  jitter = replica_random.normal(seeds[1], b, [k, 2]) * jitter_std
  half = tf.cast(replica_random.integers(seeds[2], b, [k, 2], half_size[0], half_size[1] + 1), tf.float32)
  scale = tf.stack([sx, sy])
  cxy = tf.cast(centers, tf.float32) + jitter * scale
  half = half * scale
  xs = tf.range(tf.cast(w, tf.float32))
  ys = tf.range(tf.cast(h, tf.float32))
  in_x = tf.abs(xs[None, None, :] - cxy[..., 0:1]) <= half[..., 0:1]  # [B, K, W]
  in_y = tf.abs(ys[None, None, :] - cxy[..., 1:2]) <= half[..., 1:2]  # [B, K, H]
  rects = in_y[:, :, :, None] & in_x[:, :, None, :] & selected[:, :, None, None]  # [B, K, H, W]
  mask = tf.reduce_any(rects, axis=1)[..., None]
  masked = tf.where(mask, tf.cast(fill_value, images.dtype), images)
  return masked, tf.concat([cxy, half], -1), selected
