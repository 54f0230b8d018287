"""EfficientNet-Lite (Tan & Le; Google's mobile variant) as a pose backbone, with a SimpleBaseline deconv head.

Lite is EfficientNet without squeeze-and-excitation, with ReLU6 instead of swish and a stem (32 filters) and head
(1280 filters) that do not grow with the width multiplier; the first and last block groups keep their repeats.
Convolutions use TensorFlow's "same" padding (the checkpoint was trained with it), batch norm eps 1e-3. The layers
carry the names of the EfficientNet-PyTorch state dict they load from (``_blocks.3._depthwise_conv`` ->
``block3_dwconv``), so :func:`semipose_tf.models.pretrained.convert_efficientnet_lite` maps by name.

Pose stages, cut by stride so that every split point means what it means for ResNet:

  ============  =======================================  ======  ===========
  stage         EfficientNet blocks                      stride  channels (Lite0)
  ============  =======================================  ======  ===========
  ``stem``      input adapter, stem conv, group 1        /2      16
  ``layer1``    group 2                                  /4      24
  ``layer2``    group 3                                  /8      40
  ``layer3``    groups 4 and 5                           /16     112
  ``layer4``    groups 6 and 7, head conv (1280)         /32     1280
  ``deconv``    transposed convolutions                  /4      deconv_filters[-1]
  ``final``     1x1 conv to K heatmaps                   /4      K
  ============  =======================================  ======  ===========

Input normalization: the network takes what every network here takes (ImageNet mean / std, RGB; see
:func:`semipose_tf.codec.normalize_image`) and carries its own fixed adapter (``stem_input_adapter``, a per-channel
affine) to Lite's ``(x - 127) / 128`` on 0..255 pixels, so the pipeline, cutout's zero fill (the dataset mean
colour), mixup and export need no special case. The adapter has no weights; it is part of the saved network.

Not kept from ImageNet training: stochastic depth (drop connect 0.2) and dropout before the classifier; the pose
networks here train without them, as SimpleBaseline does.
"""

from __future__ import annotations

import math
from typing import Sequence

import keras
from keras import layers

from semipose_tf.codec import DEFAULT_INPUT_SIZE, MEAN_RGB, STD_RGB
from semipose_tf.models.batch_norm import batch_norm
from semipose_tf.models.resnet import conv_init
from semipose_tf.models.simple_baseline import deconv_head, final_layer
from semipose_tf.models.staged import StagedPoseModel

# (width multiplier, depth multiplier, ImageNet resolution) of efficientnet_lite_builder.py.
VARIANTS = {0: (1.0, 1.0, 224), 1: (1.0, 1.1, 240), 2: (1.1, 1.2, 260), 3: (1.2, 1.4, 280), 4: (1.4, 1.8, 300)}
# EfficientNet-B0's block groups: (repeats, kernel, stride, expand ratio, input filters, output filters).
GROUPS = (
  (1, 3, 1, 1, 32, 16),
  (2, 3, 2, 6, 16, 24),
  (2, 5, 2, 6, 24, 40),
  (3, 3, 2, 6, 40, 80),
  (3, 5, 1, 6, 80, 112),
  (4, 5, 2, 6, 112, 192),
  (1, 3, 1, 6, 192, 320),
)
STAGE_GROUPS = {"stem": (0,), "layer1": (1,), "layer2": (2,), "layer3": (3, 4), "layer4": (5, 6)}
STEM_FILTERS, HEAD_FILTERS = 32, 1280
# The checkpoint's input: (pixel - 127) / 128 with pixels in 0..255.
LITE_MEAN, LITE_STD = 127.0, 128.0


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
  """EfficientNet's filter rounding: scale by ``width``, round to a multiple of 8, never below 90%."""
  if width == 1.0:
    return filters
  scaled = filters * width
  new = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
  return int(new + divisor if new < 0.9 * scaled else new)


def block_plan(variant: int) -> list[tuple[int, int, int, int, int, int]]:
  """Every block of a Lite variant, in order: (group, kernel, stride, expand, in filters, out filters)."""
  if variant not in VARIANTS:
    raise ValueError(f"EfficientNet-Lite variant must be one of {sorted(VARIANTS)}, got {variant}")
  width, depth, _ = VARIANTS[variant]
  plan = []
  for g, (repeats, kernel, stride, expand, cin, cout) in enumerate(GROUPS):
    if 0 < g < len(GROUPS) - 1:  # Lite keeps the first and last groups' repeats.
      repeats = int(math.ceil(depth * repeats))
    cin = STEM_FILTERS if g == 0 else round_filters(cin, width)
    cout = round_filters(cout, width)
    for r in range(repeats):
      plan.append((g, kernel, stride if r == 0 else 1, expand, cin if r == 0 else cout, cout))
  return plan


def input_adapter(dtype=None) -> layers.Layer:
  """ImageNet-normalized RGB -> Lite's (x - 127) / 128: x255 = (xn * std + mean) * 255, a per-channel affine."""
  scale = [s * 255.0 / LITE_STD for s in STD_RGB]
  offset = [(m * 255.0 - LITE_MEAN) / LITE_STD for m in MEAN_RGB]
  return layers.Rescaling(scale, offset, name="stem_input_adapter", dtype=dtype)


def _bn(name: str, dtype=None) -> layers.Layer:
  # eps 1e-3 as the TF checkpoint; momentum 0.9 as every other network here (fine-tuning with small batches).
  return batch_norm(epsilon=1e-3, momentum=0.9, name=name, dtype=dtype)


def _conv_bn_relu6(x, filters: int, kernel: int, stride: int, name: str, relu: bool = True, dtype=None):
  x = layers.Conv2D(
    filters,
    kernel,
    strides=stride,
    padding="same",
    use_bias=False,
    kernel_initializer=conv_init(),
    name=f"{name}_conv",
    dtype=dtype,
  )(x)
  x = _bn(f"{name}_bn", dtype)(x)
  return layers.ReLU(6.0, name=f"{name}_relu", dtype=dtype)(x) if relu else x


def mbconv(x, index: int, kernel: int, stride: int, expand: int, cin: int, cout: int, dtype=None):
  """Inverted residual block ``_blocks.{index}``: expand 1x1, depthwise kxk, project 1x1, identity skip."""
  name = f"block{index}"
  y = x
  if expand != 1:
    y = _conv_bn_relu6(y, cin * expand, 1, 1, f"{name}_expand", dtype=dtype)
  y = layers.DepthwiseConv2D(
    kernel,
    strides=stride,
    padding="same",
    use_bias=False,
    depthwise_initializer=conv_init(),
    name=f"{name}_dwconv",
    dtype=dtype,
  )(y)
  y = layers.ReLU(6.0, name=f"{name}_dwconv_relu", dtype=dtype)(_bn(f"{name}_dwconv_bn", dtype)(y))
  y = _conv_bn_relu6(y, cout, 1, 1, f"{name}_project", relu=False, dtype=dtype)
  if stride == 1 and cin == cout:
    y = layers.Add(name=f"{name}_add", dtype=dtype)([x, y])
  return y


def lite_stage(variant: int, stage: str, dtype=None) -> keras.Model:
  """One pose stage of a Lite backbone (see the module docstring), a functional model named ``stage``."""
  plan = block_plan(variant)
  groups = STAGE_GROUPS[stage]
  blocks = [(i, b) for i, b in enumerate(plan) if b[0] in groups]
  in_channels = 3 if stage == "stem" else blocks[0][1][4]
  inp = keras.Input((None, None, in_channels))
  x = inp
  if stage == "stem":
    x = input_adapter(dtype)(x)
    x = _conv_bn_relu6(x, STEM_FILTERS, 3, 2, "stem", dtype=dtype)
  for i, (_, kernel, stride, expand, cin, cout) in blocks:
    x = mbconv(x, i, kernel, stride, expand, cin, cout, dtype)
  if stage == "layer4":
    x = _conv_bn_relu6(x, HEAD_FILTERS, 1, 1, "head", dtype=dtype)
  return keras.Model(inp, x, name=stage)


@keras.saving.register_keras_serializable(package="semipose_tf")
class EfficientNetLitePose(StagedPoseModel):
  """EfficientNet-Lite{variant} + SimpleBaseline deconv head: [N, H, W, 3] -> [N, H/4, W/4, K] float32 heatmaps.

  Input ImageNet-normalized RGB like every network here (the fixed ``stem_input_adapter`` turns it into what the
  Lite checkpoint expects). Stages ``stem``, ``layer1`` .. ``layer4`` (strides 2, 4, 8, 16, 32), ``deconv``,
  ``final``: the split points of SimpleBaseline, so feature mixup ("layer3" = before the stride-16 stage) and every
  method work unchanged. ImageNet weights: ``build_pose_model(..., pretrained="efficientnet_lite0_imagenet")``.

  Args:
    variant: 0 .. 4 (Lite0 .. Lite4); ImageNet weights install offline for Lite0.
    num_keypoints: K.
    input_shape: (H, W, 3), H and W multiples of 32.
    deconv_filters: Filters of each transposed convolution.
    deconv_kernel: Kernel size of the transposed convolutions.
    name, dtype, trainable: As for any Keras model; ``dtype`` may be a mixed policy ("mixed_bfloat16").
  """

  def __init__(
    self,
    variant: int = 0,
    num_keypoints: int = 17,
    input_shape: Sequence[int | None] = (*DEFAULT_INPUT_SIZE, 3),
    deconv_filters: Sequence[int] = (128, 128, 128),
    deconv_kernel: int = 4,
    name: str | None = None,
    dtype=None,
    **kwargs,
  ):
    block_plan(variant)  # Validates the variant.
    stages = [(s, lite_stage(variant, s, dtype)) for s in STAGE_GROUPS]
    stages.append(("deconv", deconv_head(HEAD_FILTERS, deconv_filters, deconv_kernel, dtype)))
    stages.append(("final", final_layer(deconv_filters[-1], num_keypoints, dtype)))
    self._init_chain(stages, input_shape, name=name or f"efficientnet_lite{variant}_pose", dtype=dtype, **kwargs)
    self.variant = int(variant)
    self.num_keypoints = num_keypoints
    self.image_shape = tuple(input_shape)
    self.deconv_filters = tuple(deconv_filters)
    self.deconv_kernel = deconv_kernel

  @property
  def backbone_stages(self) -> tuple[str, ...]:
    return ("stem", "layer1", "layer2", "layer3", "layer4")

  def get_config(self):
    return {
      **self._base_config(),
      "variant": self.variant,
      "num_keypoints": self.num_keypoints,
      "input_shape": list(self.image_shape),
      "deconv_filters": list(self.deconv_filters),
      "deconv_kernel": self.deconv_kernel,
    }
