"""Heatmaps: Gaussian targets, argmax decoding with the quarter-pixel shift, flip-back, and decoding to image
pixels through the inverse crop affine."""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from semipose_tf.codec.affine import apply_affine, crop_affine, invert_affine

SIGMA = 2.0  # Target Gaussian sigma in heatmap pixels (the reference's, at every input size).


def encode_heatmaps(
  keypoints: tf.Tensor,
  visible: tf.Tensor,
  input_size: Sequence[int],
  heatmap_size: Sequence[int],
  sigma: float = SIGMA,
  subpixel: bool = False,
) -> tuple[tf.Tensor, tf.Tensor]:
  """Gaussian heatmap targets and per-joint weights (the reference's ``generate_target``).

  Args:
    keypoints: [..., K, 2] joint positions in input (crop) pixels.
    visible: [..., K] labeled flags (COCO v > 0); unlabeled joints get weight 0 and an all-zero map.
    input_size: (H, W) of the crop.
    heatmap_size: (h, w) of the heatmaps.
    sigma: Gaussian sigma in heatmap pixels.
    subpixel: Centre the Gaussian at the exact position instead of the rounded one (the reference rounds).

  Returns:
    heatmaps [..., h, w, K] float32 with peak 1, weights [..., K] float32 in {0, 1}. A joint's weight is 0 when
    unlabeled or when its Gaussian's support lies entirely outside the heatmap.
  """
  keypoints = tf.convert_to_tensor(keypoints, tf.float32)
  visible = tf.cast(tf.convert_to_tensor(visible) > 0, tf.float32)
  h, w = int(heatmap_size[0]), int(heatmap_size[1])
  stride_x = float(input_size[1]) / w
  stride_y = float(input_size[0]) / h
  radius = int(sigma * 3)
  mu_x = keypoints[..., 0] / stride_x
  mu_y = keypoints[..., 1] / stride_y
  # int(x + 0.5) truncates toward zero in the reference; a cast does the same.
  int_x = tf.cast(tf.cast(mu_x + 0.5, tf.int32), tf.float32)
  int_y = tf.cast(tf.cast(mu_y + 0.5, tf.int32), tf.float32)
  inside = ~((int_x - radius >= w) | (int_y - radius >= h) | (int_x + radius + 1 < 0) | (int_y + radius + 1 < 0))
  weights = visible * tf.cast(inside, tf.float32)
  cx, cy = (mu_x, mu_y) if subpixel else (int_x, int_y)
  xs = tf.range(w, dtype=tf.float32)
  ys = tf.range(h, dtype=tf.float32)
  dx = xs - cx[..., None]  # [..., K, w]
  dy = ys - cy[..., None]  # [..., K, h]
  # Support: the (2r+1)^2 window around the rounded centre, as the reference crops its Gaussian patch.
  in_x = tf.abs(xs - int_x[..., None]) <= radius
  in_y = tf.abs(ys - int_y[..., None]) <= radius
  gx = tf.where(in_x, tf.exp(-dx * dx / (2.0 * sigma * sigma)), 0.0)
  gy = tf.where(in_y, tf.exp(-dy * dy / (2.0 * sigma * sigma)), 0.0)
  maps = gy[..., :, None] * gx[..., None, :] * weights[..., None, None]  # [..., K, h, w]
  rank = maps.shape.rank
  perm = list(range(rank - 3)) + [rank - 2, rank - 1, rank - 3]
  return tf.transpose(maps, perm), weights


def decode_heatmaps(heatmaps: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
  """Argmax decoding with the reference's quarter-pixel shift (``get_max_preds`` + ``get_final_preds``).

  Args:
    heatmaps: [..., h, w, K].

  Returns:
    coords [..., K, 2] (x, y) in heatmap pixels and scores [..., K] (the maxima). A channel whose maximum is
    not positive decodes to (0, 0), as in the reference.
  """
  heatmaps = tf.convert_to_tensor(heatmaps, tf.float32)
  shape = tf.shape(heatmaps)
  h, w, k = shape[-3], shape[-2], shape[-1]
  lead = shape[:-3]
  flat = tf.reshape(heatmaps, [-1, h * w, k])
  flat = tf.transpose(flat, [0, 2, 1])  # [B, K, h*w]
  idx = tf.argmax(flat, axis=-1, output_type=tf.int32)  # [B, K]
  score = tf.reduce_max(flat, axis=-1)
  px = idx % w
  py = idx // w

  def at(offset):
    return tf.gather(flat, tf.clip_by_value(idx + offset, 0, h * w - 1), batch_dims=2)

  interior = (px > 1) & (px < w - 1) & (py > 1) & (py < h - 1)
  dx = tf.sign(at(1) - at(-1))
  dy = tf.sign(at(w) - at(-w))
  x = tf.cast(px, tf.float32) + tf.where(interior, 0.25 * dx, 0.0)
  y = tf.cast(py, tf.float32) + tf.where(interior, 0.25 * dy, 0.0)
  coords = tf.stack([x, y], -1) * tf.cast(score > 0, tf.float32)[..., None]
  out_shape = tf.concat([lead, [k]], 0)
  return tf.reshape(coords, tf.concat([out_shape, [2]], 0)), tf.reshape(score, out_shape)


def flip_back(heatmaps: tf.Tensor, flip_index, shift: bool = True) -> tf.Tensor:
  """Heatmaps of a horizontally flipped input [..., h, w, K] -> heatmaps of the original input.

  Mirrors the width axis and swaps left/right channels (``flip_index`` from the keypoint spec). With ``shift``,
  moves the result one pixel right, as the reference does: mirroring in heatmap space is off by 3/4 of a heatmap
  pixel from mirroring the input (x_hm -> w - 1 - x_hm versus w - 1/4 - x_hm).
  """
  heatmaps = tf.convert_to_tensor(heatmaps)
  flipped = tf.gather(tf.reverse(heatmaps, axis=[-2]), list(flip_index), axis=-1)
  if shift:
    flipped = tf.concat([flipped[..., :1, :], flipped[..., :-1, :]], axis=-2)
  return flipped


def heatmap_to_image(coords: tf.Tensor, center: tf.Tensor, scale: tf.Tensor, heatmap_size: Sequence[int]) -> tf.Tensor:
  """Maps heatmap-pixel coordinates [..., K, 2] back to image pixels (the reference's ``transform_preds``)."""
  to_heatmap = crop_affine(center, scale, 0.0, heatmap_size)
  return apply_affine(invert_affine(to_heatmap), coords)


def decode_to_image(heatmaps: tf.Tensor, center: tf.Tensor, scale: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
  """Decodes heatmaps [..., h, w, K] of crops (center [..., 2], scale [..., 2]) to image keypoints and scores."""
  coords, scores = decode_heatmaps(heatmaps)
  hm_size = heatmaps.shape[-3:-1]
  return heatmap_to_image(coords, center, scale, hm_size), scores
