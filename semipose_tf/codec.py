"""Heatmap geometry in one place: box -> center/scale, crop affine and its inverse, targets, decoding, and the
:class:`Geometry` (input size, stride, padding) that the pipeline, the train step, evaluation and export all read,
with the one evaluation crop they share (:meth:`Geometry.eval_crop`).

Everything here is TensorFlow ops on float32 tensors with arbitrary leading batch dimensions, usable eagerly, inside
``tf.data`` and inside a ``train_step``. The conventions are the reference's (HRNet / SimpleBaseline / Xie et al.):

* A person crop is ``center`` (x, y) in image pixels and ``scale`` (sx, sy) in units of ``PIXEL_STD`` = 200 px.
* The crop affine maps image pixels to output pixels: a similarity (rotation by ``rotation`` degrees about the
  centre, uniform zoom ``out_w / (sx * 200)``), optionally preceded by a horizontal flip about the centre. It equals
  ``get_affine_transform`` of the reference (OpenCV three-point construction) composed with its image flip.
* Heatmaps are channels-last ``[..., h, w, K]`` at 1/stride of the input; targets are unnormalized Gaussians
  (peak 1) centred at the rounded joint position with support radius 3 sigma.
* Decoding: per-channel argmax, score = max, a 0.25 px shift toward the larger neighbour, then the inverse crop
  affine at heatmap resolution back to image pixels.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import tensorflow as tf

PIXEL_STD = 200.0
PADDING = 1.25        # Box padding of box -> centre / scale (the reference's).
STRIDE = 4            # Input pixels per heatmap pixel of every network here.
# ImageNet statistics (RGB), as the reference normalizes.
MEAN_RGB = (0.485, 0.456, 0.406)
STD_RGB = (0.229, 0.224, 0.225)


def normalize_image(image: tf.Tensor) -> tf.Tensor:
  """uint8 [..., 3] -> float32 ``(x / 255 - mean) / std`` with ImageNet RGB statistics (what the networks take)."""
  image = tf.cast(image, tf.float32) / 255.0
  return (image - tf.constant(MEAN_RGB)) / tf.constant(STD_RGB)


def denormalize_image(image: tf.Tensor) -> tf.Tensor:
  """Inverse of :func:`normalize_image`: float32 normalized [..., 3] -> uint8."""
  image = image * tf.constant(STD_RGB) + tf.constant(MEAN_RGB)
  return tf.cast(tf.clip_by_value(image * 255.0 + 0.5, 0.0, 255.0), tf.uint8)


@dataclasses.dataclass(frozen=True)
class Geometry:
  """Where a person's crop comes from and how heatmap pixels map to it.

  Attributes:
    input_size: (H, W) of the network input.
    stride: Input pixels per heatmap pixel.
    padding: Box padding factor of box -> centre / scale.
  """

  input_size: tuple[int, int] = (256, 192)
  stride: int = STRIDE
  padding: float = PADDING

  def __post_init__(self):
    object.__setattr__(self, "input_size", (int(self.input_size[0]), int(self.input_size[1])))

  @classmethod
  def of_network(cls, net, padding: float = PADDING) -> "Geometry":
    """The geometry of a pose network (its input size; the stride from its input and heatmap shapes)."""
    (h, w), (hh, hw) = net.input_shape[1:3], net.output_shape[1:3]
    if None in (h, w):
      raise ValueError("the network needs a fixed input size")
    if h // hh != w // hw or h % hh or w % hw:
      raise ValueError(f"heatmaps {hh}x{hw} are not a whole stride of the input {h}x{w}")
    return cls((h, w), h // hh, padding)

  @property
  def heatmap_size(self) -> tuple[int, int]:
    return (self.input_size[0] // self.stride, self.input_size[1] // self.stride)

  @property
  def aspect_ratio(self) -> float:
    return self.input_size[1] / self.input_size[0]

  def center_scale(self, box: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(x, y, w, h) boxes [..., 4] -> centre [..., 2] and scale [..., 2] of their padded crops."""
    return box_to_center_scale(box, self.aspect_ratio, self.padding)

  def to_input(self, coords: tf.Tensor) -> tf.Tensor:
    """Heatmap-pixel coordinates [..., 2] (x, y) -> input-pixel coordinates."""
    return tf.convert_to_tensor(coords, tf.float32) * float(self.stride)

  def eval_crop(self, image: tf.Tensor, box: tf.Tensor) -> dict[str, tf.Tensor]:
    """The un-augmented crop of one person, the one both the evaluation pipeline and the SavedModel use.

    Args:
      image: uint8 [H, W, 3] full image.
      box: [4] (x, y, w, h) in image pixels.

    Returns:
      ``image`` float32 [h, w, 3] normalized crop, ``center`` [2], ``scale`` [2], ``affine`` [2, 3] image -> crop.
    """
    center, scale = self.center_scale(box)
    affine = crop_affine(center, scale, 0.0, self.input_size)
    crop = warp_image(image, affine, self.input_size)
    crop.set_shape([self.input_size[0], self.input_size[1], 3])
    return {"image": normalize_image(crop), "center": center, "scale": scale, "affine": affine}


def box_to_center_scale(box: tf.Tensor, aspect_ratio: float, padding: float = 1.25,
                        pixel_std: float = PIXEL_STD) -> tuple[tf.Tensor, tf.Tensor]:
  """Converts (x, y, w, h) boxes to crop centres and scales (the reference's ``_box2cs``).

  The short side grows until w / h == aspect_ratio (input width / height), then both sides are padded.

  Args:
    box: [..., 4] float, (x, y, w, h) in image pixels.
    aspect_ratio: Input width / height, e.g. 192 / 256.
    padding: Multiplier applied to the scale (1.25 in the reference).
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


def crop_affine(center: tf.Tensor, scale: tf.Tensor, rotation: tf.Tensor | float, output_size: Sequence[int],
                flip: tf.Tensor | bool = False, pixel_std: float = PIXEL_STD) -> tf.Tensor:
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


def warp_image(image: tf.Tensor, matrix: tf.Tensor, output_size: Sequence[int], fill_value: float = 0.0,
               interpolation: str = "BILINEAR") -> tf.Tensor:
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
      images=image, transforms=transforms, output_shape=tf.constant(list(output_size), tf.int32),
      fill_value=tf.constant(fill_value, tf.float32), interpolation=interpolation, fill_mode="CONSTANT")
  return out[0] if single else out


def resample_affine(images: tf.Tensor, matrix: tf.Tensor, output_size: Sequence[int],
                    fill_value: float = 0.0) -> tf.Tensor:
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


def encode_heatmaps(keypoints: tf.Tensor, visible: tf.Tensor, input_size: Sequence[int],
                    heatmap_size: Sequence[int], sigma: float = 2.0,
                    subpixel: bool = False) -> tuple[tf.Tensor, tf.Tensor]:
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


def heatmap_to_image(coords: tf.Tensor, center: tf.Tensor, scale: tf.Tensor,
                     heatmap_size: Sequence[int]) -> tf.Tensor:
  """Maps heatmap-pixel coordinates [..., K, 2] back to image pixels (the reference's ``transform_preds``)."""
  to_heatmap = crop_affine(center, scale, 0.0, heatmap_size)
  return apply_affine(invert_affine(to_heatmap), coords)


def decode_to_image(heatmaps: tf.Tensor, center: tf.Tensor, scale: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
  """Decodes heatmaps [..., h, w, K] of crops (center [..., 2], scale [..., 2]) to image keypoints and scores."""
  coords, scores = decode_heatmaps(heatmaps)
  hm_size = heatmaps.shape[-3:-1]
  return heatmap_to_image(coords, center, scale, hm_size), scores
