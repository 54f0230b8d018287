"""Crop geometry: box -> centre / scale, the crop affine (and a zoom about the centre), its inverse and
composition, and the image / batch warps (see the package docstring for the conventions)."""

from __future__ import annotations

import math
from typing import Sequence

import tensorflow as tf

PIXEL_STD = 200.0
PADDING = 1.25  # Box padding of box -> centre / scale (the reference's).


def sanitize_box(x, y, w, h, width, height, maximum=max, minimum=min):
  """The reference's box sanitation (HRNet's COCO loader): clip the top-left corner to the image, then the
  bottom-right one, with its "x2 = x1 + w - 1" pixel convention; returns (x, y, w, h).

  The one box rule of every set the converters write and of every box a SavedModel is sent, so that a served
  request and the evaluation crop the same pixels. Plain Python numbers by default; pass ``tf.maximum`` and
  ``tf.minimum`` for tensors.
  """
  x1, y1 = maximum(0.0, x), maximum(0.0, y)
  x2 = minimum(width - 1.0, x1 + maximum(0.0, w - 1.0))
  y2 = minimum(height - 1.0, y1 + maximum(0.0, h - 1.0))
  return x1, y1, x2 - x1, y2 - y1


def box_to_center_scale(
  box: tf.Tensor, aspect_ratio: float, padding: float = PADDING, pixel_std: float = PIXEL_STD
) -> tuple[tf.Tensor, tf.Tensor]:
  """Converts (x, y, w, h) boxes to crop centres and scales (the reference's ``_box2cs``).

  The short side grows until w / h == aspect_ratio (input width / height), then both sides are padded.

  Args:
    box: [..., 4] float, (x, y, w, h) in image pixels.
    aspect_ratio: Input width / height, e.g. 192 / 256.
    padding: Multiplier applied to the scale (``PADDING``, the reference's).
    pixel_std: Scale unit in pixels.

  Returns:
    center [..., 2] (x, y) and scale [..., 2] (sx, sy) in units of ``pixel_std``.
  """
  box = tf.convert_to_tensor(box, tf.float32)
  x, y, w, h = tf.unstack(box, axis=-1)
  center = tf.stack([x + w * 0.5, y + h * 0.5], axis=-1)
  wider = w > aspect_ratio * h
  new_w = tf.where(wider, w, h * aspect_ratio)
  new_h = tf.where(wider, w / aspect_ratio, h)
  scale = tf.stack([new_w, new_h], axis=-1) * (padding / pixel_std)
  return center, scale


def crop_affine(
  center: tf.Tensor,
  scale: tf.Tensor,
  rotation: tf.Tensor | float,
  output_size: Sequence[int],
  flip: tf.Tensor | bool = False,
  pixel_std: float = PIXEL_STD,
) -> tf.Tensor:
  """Affine matrix mapping image pixels to crop pixels.

  ``out = A @ [x, y, 1]`` with ``A = [s R(-rot) F | d - s R(-rot) F c]`` where F = diag(-1, 1) when flipping
  (a mirror about the crop centre, identical to the reference's ``x -> width - 1 - x`` image flip followed by the
  crop of the mirrored centre), s = out_w / (sx * pixel_std) and d the output centre.

  Args:
    center: [..., 2] crop centre in image pixels.
    scale: [..., 2] crop scale in units of pixel_std (only sx sets the zoom, as in the reference).
    rotation: [...] degrees, counter-clockwise in the image as displayed (the reference's sign).
    output_size: (height, width) of the crop.
    flip: [...] bool, mirror horizontally.
    pixel_std: Scale unit in pixels.

  Returns:
    [..., 2, 3] float32 affine matrices.
  """
  scale = tf.convert_to_tensor(scale, tf.float32)
  return _similarity(center, float(output_size[1]) / (scale[..., 0] * pixel_std), rotation, output_size, flip)


def zoom_affine(zoom: tf.Tensor, rotation: tf.Tensor | float, size: Sequence[int]) -> tf.Tensor:
  """[..., 2, 3] affine of a zoom (> 1 enlarges) and rotation in degrees about the centre of a ``size`` (H, W)
  view onto itself: the strong augmentation of a crop or of its heatmaps."""
  zoom = tf.convert_to_tensor(zoom, tf.float32)
  h, w = float(size[0]), float(size[1])
  centre = tf.broadcast_to(tf.constant([w / 2, h / 2]), tf.concat([tf.shape(zoom), [2]], 0))
  return _similarity(centre, zoom, rotation, size, False)


def _similarity(center, zoom, rotation, output_size, flip) -> tf.Tensor:
  """The matrix of :func:`crop_affine` from its zoom (output pixels per image pixel)."""
  center = tf.convert_to_tensor(center, tf.float32)
  rot = tf.convert_to_tensor(rotation, tf.float32) * (math.pi / 180.0)
  flip = tf.convert_to_tensor(flip, tf.bool)
  batch_shape = tf.broadcast_dynamic_shape(tf.shape(center)[:-1], tf.shape(rot))
  batch_shape = tf.broadcast_dynamic_shape(batch_shape, tf.shape(flip))
  out_h, out_w = float(output_size[0]), float(output_size[1])
  cos, sin = tf.cos(rot) * zoom, tf.sin(rot) * zoom
  sign = tf.where(flip, -1.0, 1.0)
  # Linear part s R(-rot) F, with R(t) = [[cos t, -sin t], [sin t, cos t]] in image (y-down) coordinates.
  a00, a01 = cos * sign, sin
  a10, a11 = -sin * sign, cos
  cx, cy = center[..., 0], center[..., 1]
  t0 = out_w * 0.5 - (a00 * cx + a01 * cy)
  t1 = out_h * 0.5 - (a10 * cx + a11 * cy)
  rows = [tf.broadcast_to(v, batch_shape) for v in (a00, a01, t0, a10, a11, t1)]
  return tf.reshape(tf.stack(rows, axis=-1), tf.concat([batch_shape, [2, 3]], 0))


def invert_affine(matrix: tf.Tensor) -> tf.Tensor:
  """Inverts [..., 2, 3] affine matrices (as 3x3 with last row 0 0 1)."""
  matrix = tf.convert_to_tensor(matrix, tf.float32)
  a, b, c = matrix[..., 0, 0], matrix[..., 0, 1], matrix[..., 0, 2]
  d, e, f = matrix[..., 1, 0], matrix[..., 1, 1], matrix[..., 1, 2]
  det = a * e - b * d
  ia, ib, id_, ie = e / det, -b / det, -d / det, a / det
  ic = -(ia * c + ib * f)
  if_ = -(id_ * c + ie * f)
  return tf.stack([tf.stack([ia, ib, ic], -1), tf.stack([id_, ie, if_], -1)], -2)


def compose_affine(outer: tf.Tensor, inner: tf.Tensor) -> tf.Tensor:
  """Returns the [..., 2, 3] affine ``outer ∘ inner`` (apply ``inner`` first)."""
  outer = tf.convert_to_tensor(outer, tf.float32)
  inner = tf.convert_to_tensor(inner, tf.float32)
  lin = tf.linalg.matmul(outer[..., :2], inner[..., :2])
  trans = tf.linalg.matvec(outer[..., :2], inner[..., 2]) + outer[..., 2]
  return tf.concat([lin, trans[..., None]], axis=-1)


def apply_affine(matrix: tf.Tensor, points: tf.Tensor) -> tf.Tensor:
  """Applies [..., 2, 3] affines to points [..., K, 2] -> [..., K, 2]."""
  matrix = tf.convert_to_tensor(matrix, tf.float32)
  points = tf.convert_to_tensor(points, tf.float32)
  return tf.linalg.matmul(points, matrix[..., :2], transpose_b=True) + matrix[..., None, :, 2]


def warp_image(
  image: tf.Tensor,
  matrix: tf.Tensor,
  output_size: Sequence[int],
  fill_value: float = 0.0,
  interpolation: str = "BILINEAR",
) -> tf.Tensor:
  """Warps images with image->output affines (OpenCV ``warpAffine`` semantics, pixel centres at integers).

  Not XLA-compilable (``ImageProjectiveTransformV3`` has no XLA kernel).

  Args:
    image: [H, W, C] or [N, H, W, C], any real dtype (uint8 stays uint8).
    matrix: [2, 3] or [N, 2, 3] image->output affines; one matrix may serve a whole batch.
    output_size: (height, width).
    fill_value: Value outside the source image.
    interpolation: "BILINEAR" or "NEAREST".

  Returns:
    [out_h, out_w, C] or [N, out_h, out_w, C], the dtype of ``image``.
  """
  image = tf.convert_to_tensor(image)
  single = image.shape.rank == 3
  if single:
    image = image[None]
  inv = tf.reshape(invert_affine(matrix), [-1, 6])  # output -> input, what the op expects.
  transforms = tf.concat([inv, tf.zeros([tf.shape(inv)[0], 2], tf.float32)], axis=1)
  out = tf.raw_ops.ImageProjectiveTransformV3(
    images=image,
    transforms=transforms,
    output_shape=tf.constant(list(output_size), tf.int32),
    fill_value=tf.constant(fill_value, tf.float32),
    interpolation=interpolation,
    fill_mode="CONSTANT",
  )
  return out[0] if single else out


def resample_affine(
  images: tf.Tensor, matrix: tf.Tensor, output_size: Sequence[int], fill_value: float = 0.0
) -> tf.Tensor:
  """Bilinear affine warp built from gathers, so that it compiles under XLA (unlike :func:`warp_image`).

  Same semantics as :func:`warp_image` (pixel centres at integers, ``fill_value`` outside), for float batches.

  Args:
    images: [N, H, W, C] float.
    matrix: [N, 2, 3] source->output affines.
    output_size: (height, width).
    fill_value: Value outside the source.

  Returns:
    [N, out_h, out_w, C], the dtype of ``images``.
  """
  images = tf.convert_to_tensor(images)
  dtype = images.dtype
  shape = tf.shape(images)
  n, h, w = shape[0], shape[1], shape[2]
  out_h, out_w = int(output_size[0]), int(output_size[1])
  inv = invert_affine(matrix)  # output -> source
  ys, xs = tf.meshgrid(tf.range(out_h, dtype=tf.float32), tf.range(out_w, dtype=tf.float32), indexing="ij")
  grid = tf.reshape(tf.stack([xs, ys], -1), [1, -1, 2])  # [1, P, 2]
  src = apply_affine(inv, tf.broadcast_to(grid, [n, out_h * out_w, 2]))  # [N, P, 2]
  x, y = src[..., 0], src[..., 1]
  x0, y0 = tf.floor(x), tf.floor(y)
  flat = tf.reshape(tf.cast(images, tf.float32), [n, h * w, -1])
  wf, hf = tf.cast(w, tf.float32), tf.cast(h, tf.float32)
  out = 0.0
  for dx, dy in ((0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (1.0, 1.0)):
    xi, yi = x0 + dx, y0 + dy
    weight = (1.0 - tf.abs(x - xi)) * (1.0 - tf.abs(y - yi))
    inside = (xi >= 0) & (xi <= wf - 1) & (yi >= 0) & (yi <= hf - 1)
    idx = tf.cast(tf.clip_by_value(yi, 0, hf - 1) * wf + tf.clip_by_value(xi, 0, wf - 1), tf.int32)
    vals = tf.gather(flat, idx, batch_dims=1)  # [N, P, C]
    vals = tf.where(inside[..., None], vals, fill_value)
    out += vals * weight[..., None]
  return tf.cast(tf.reshape(out, [n, out_h, out_w, -1]), dtype)
