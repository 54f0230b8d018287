"""Heatmap geometry in one place: box -> center/scale, crop affine and its inverse, targets, decoding, and the
:class:`HeatmapCodec` (input size, stride, sigma, padding; encode, decode) that the pipeline, the train step,
evaluation and export all read, with the one evaluation crop they share (:meth:`HeatmapCodec.eval_crop`).

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

from semipose_tf.codec.affine import (
  PIXEL_STD,
  apply_affine,
  box_to_center_scale,
  compose_affine,
  crop_affine,
  invert_affine,
  resample_affine,
  sanitize_box,
  warp_image,
  zoom_affine,
)
from semipose_tf.codec.geometry import (
  DEFAULT_INPUT_SIZE,
  MEAN_RGB,
  PADDING,
  STD_RGB,
  STRIDE,
  Geometry,
  HeatmapCodec,
  denormalize_image,
  normalize_image,
)
from semipose_tf.codec.heatmaps import (
  SIGMA,
  decode_heatmaps,
  decode_to_image,
  encode_heatmaps,
  flip_back,
  heatmap_to_image,
)

__all__ = [
  "DEFAULT_INPUT_SIZE",
  "MEAN_RGB",
  "PADDING",
  "PIXEL_STD",
  "STD_RGB",
  "SIGMA",
  "STRIDE",
  "Geometry",
  "HeatmapCodec",
  "apply_affine",
  "box_to_center_scale",
  "compose_affine",
  "crop_affine",
  "decode_heatmaps",
  "decode_to_image",
  "denormalize_image",
  "encode_heatmaps",
  "flip_back",
  "heatmap_to_image",
  "invert_affine",
  "normalize_image",
  "resample_affine",
  "sanitize_box",
  "warp_image",
  "zoom_affine",
]
