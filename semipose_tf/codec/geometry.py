"""The heatmap codec every part reads (:class:`HeatmapCodec`: input size, stride, sigma, padding; encode, decode and
the one evaluation crop) and the image normalization the networks take."""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from semipose_tf.codec.affine import PADDING, box_to_center_scale, crop_affine, warp_image
from semipose_tf.codec.heatmaps import SIGMA, decode_to_image, encode_heatmaps

# The input size (H, W) every default in the project takes: COCO's 256x192 (the paper's and the reference's).
DEFAULT_INPUT_SIZE = (256, 192)
STRIDE = 4  # Input pixels per heatmap pixel of every network here.
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
class HeatmapCodec:
  """Where a person's crop comes from, how joints become heatmaps and heatmaps become joints (mmpose's codec).

  The pipeline encodes its targets with it, the train step reads its sizes, evaluation and export crop and decode
  with it: each constant is written here once.

  Attributes:
    input_size: (H, W) of the network input.
    stride: Input pixels per heatmap pixel.
    sigma: Target Gaussian sigma in heatmap pixels.
    padding: Box padding factor of box -> centre / scale.
  """

  input_size: tuple[int, int] = DEFAULT_INPUT_SIZE
  stride: int = STRIDE
  padding: float = PADDING
  sigma: float = SIGMA

  def __post_init__(self):
    object.__setattr__(self, "input_size", (int(self.input_size[0]), int(self.input_size[1])))

  @classmethod
  def of_network(cls, net, padding: float = PADDING) -> "HeatmapCodec":
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

  def encode(self, joints: tf.Tensor, visible: tf.Tensor, subpixel: bool = False) -> tuple[tf.Tensor, tf.Tensor]:
    """Joints [..., K, 2] in input pixels and labeled flags [..., K] -> Gaussian targets [..., h, w, K] and
    per-joint weights [..., K] (:func:`~semipose_tf.codec.encode_heatmaps`)."""
    return encode_heatmaps(joints, visible, self.input_size, self.heatmap_size, self.sigma, subpixel)

  def decode(self, heatmaps: tf.Tensor, center: tf.Tensor, scale: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Heatmaps [..., h, w, K] of crops (center, scale [..., 2]) -> image keypoints [..., K, 2] and scores [..., K]
    (:func:`~semipose_tf.codec.decode_to_image`)."""
    return decode_to_image(heatmaps, center, scale)

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


# The name every caller used before the codec gained sigma, encode and decode; the same class.
Geometry = HeatmapCodec
