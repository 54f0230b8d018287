"""Per-example data ops: each maps a dict of tensors to a dict of tensors (the other keys pass through).

They run eagerly and inside ``tf.data.Dataset.map``. Key conventions:

* ``image``: uint8 [H, W, 3] (the full image, then the crop) or float32 normalized after :func:`normalize`;
* ``bbox`` [4] (x, y, w, h), ``keypoints`` [K, 3] (x, y, v) in image pixels; ``center`` [2], ``scale`` [2];
* ``affine`` [2, 3] image -> crop pixels; ``rotation`` [] degrees; ``flip`` [] bool;
* ``joints`` [K, 2] in crop pixels, ``visible`` [K] float32 (channels already swapped when flipped);
* ``heatmaps`` [h, w, K], ``weights`` [K].
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import tensorflow as tf

from semipose_tf import codec
from semipose_tf.augment.affine import AffineAugment, sample_affine

Example = dict[str, tf.Tensor]

MEAN_RGB, STD_RGB = codec.MEAN_RGB, codec.STD_RGB


def decode_image(ex: Example) -> Example:
  """Reads ``image/encoded`` (JPEG, PNG, ...); writes ``image`` uint8 [H, W, 3] (grayscale becomes RGB)."""
  ex = dict(ex)
  image = tf.io.decode_image(ex.pop("image/encoded"), channels=3, expand_animations=False)
  ex["image"] = tf.ensure_shape(image, [None, None, 3])
  return ex


def instances(ex: Example) -> tf.data.Dataset:
  """Reads a decoded record (``image``, ``image/*``, ``instance/*``); returns a dataset of one element per instance.

  Each element: ``image`` (the shared full image), ``image/id``, ``image/filename``, ``instance/id`` [],
  ``bbox`` [4], ``keypoints`` [K, 3], ``score`` [], ``area`` [].
  """
  per_instance = {"instance/id": ex["instance/id"], "bbox": ex["instance/bbox"],
                  "keypoints": ex["instance/keypoints"], "score": ex["instance/score"], "area": ex["instance/area"]}
  shared = {"image": ex["image"], "image/id": ex["image/id"], "image/filename": ex["image/filename"]}
  return tf.data.Dataset.from_tensor_slices(per_instance).map(lambda d: {**shared, **d})


def center_scale(ex: Example, aspect_ratio: float, padding: float = codec.PADDING) -> Example:
  """Reads ``bbox``; writes ``center`` [2] and ``scale`` [2] (see :func:`semipose_tf.codec.box_to_center_scale`)."""
  ex = dict(ex)
  ex["center"], ex["scale"] = codec.box_to_center_scale(ex["bbox"], aspect_ratio, padding)
  return ex


def random_affine(ex: Example, seed: tf.Tensor, config: AffineAugment, input_size: Sequence[int]) -> Example:
  """Reads ``center``, ``scale``; writes ``scale`` (augmented), ``rotation``, ``flip``, ``affine`` [2, 3].

  Args:
    ex: The example.
    seed: [2] int stateless seed for this example.
    config: The augmentation distribution.
    input_size: (H, W) of the crop.
  """
  ex = dict(ex)
  p = sample_affine(seed, config)
  ex["scale"] = ex["scale"] * p["scale_mult"]
  ex["rotation"], ex["flip"] = p["rotation"], p["flip"]
  ex["affine"] = codec.crop_affine(ex["center"], ex["scale"], ex["rotation"], input_size, ex["flip"])
  return ex


def fixed_affine(ex: Example, input_size: Sequence[int]) -> Example:
  """Reads ``center``, ``scale``; writes ``rotation`` 0, ``flip`` False and the plain crop ``affine`` [2, 3]."""
  ex = dict(ex)
  ex["rotation"] = tf.constant(0.0)
  ex["flip"] = tf.constant(False)
  ex["affine"] = codec.crop_affine(ex["center"], ex["scale"], 0.0, input_size)
  return ex


def crop(ex: Example, input_size: Sequence[int]) -> Example:
  """Reads ``image`` (full, uint8) and ``affine``; writes ``image`` as the uint8 [H, W, 3] crop (black outside)."""
  ex = dict(ex)
  ex["image"] = codec.warp_image(ex["image"], ex["affine"], input_size)
  ex["image"].set_shape([input_size[0], input_size[1], 3])
  return ex


def transform_keypoints(ex: Example, flip_index: Sequence[int]) -> Example:
  """Reads ``keypoints`` [K, 3], ``affine``, ``flip``; writes ``joints`` [K, 2] in crop pixels, ``visible`` [K].

  When ``flip`` is set, left and right channels swap (``flip_index`` from the keypoint spec), as the reference's
  ``fliplr_joints`` does.
  """
  ex = dict(ex)
  kps = tf.convert_to_tensor(ex["keypoints"], tf.float32)
  joints = codec.apply_affine(ex["affine"], kps[:, :2])
  visible = tf.cast(kps[:, 2] > 0, tf.float32)
  perm = tf.constant(np.asarray(flip_index, np.int32))
  ex["joints"] = tf.where(ex["flip"], tf.gather(joints, perm), joints)
  ex["visible"] = tf.where(ex["flip"], tf.gather(visible, perm), visible)
  return ex


def make_targets(ex: Example, heatmap_codec: codec.HeatmapCodec, subpixel: bool = False) -> Example:
  """Reads ``joints``, ``visible``; writes ``heatmaps`` [h, w, K] and ``weights`` [K] (``heatmap_codec.encode``)."""
  ex = dict(ex)
  ex["heatmaps"], ex["weights"] = heatmap_codec.encode(ex["joints"], ex["visible"], subpixel)
  return ex


def normalize(ex: Example) -> Example:
  """Reads ``image`` uint8; writes ``image`` float32, (x / 255 - mean) / std with ImageNet RGB statistics."""
  ex = dict(ex)
  ex["image"] = codec.normalize_image(ex["image"])
  return ex


def eval_crop(ex: Example, geometry: codec.HeatmapCodec) -> Example:
  """Reads ``image`` (full, uint8) and ``bbox``; writes the normalized un-augmented crop ``image``, ``center``,
  ``scale``, ``affine``, ``rotation`` 0 and ``flip`` False (:meth:`semipose_tf.codec.HeatmapCodec.eval_crop`, which
  the SavedModel calls too)."""
  ex = dict(ex)
  ex.update(geometry.eval_crop(ex["image"], ex["bbox"]))
  ex["rotation"], ex["flip"] = tf.constant(0.0), tf.constant(False)
  return ex


denormalize = codec.denormalize_image


def select(ex: Example, keys: Sequence[str]) -> Example:
  """Keeps only ``keys``."""
  return {k: ex[k] for k in keys}
