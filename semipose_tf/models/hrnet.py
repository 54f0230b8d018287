"""HRNet (Sun et al., CVPR'19) for pose, W32 and W48, in the reference topology (``pose_hrnet.py``).

Stem (two 3x3/2 convs, 64) -> stage1 (4 bottlenecks, 256 channels) -> stage2..4, each a transition (new lower-
resolution branch) followed by high-resolution modules of 4 basic blocks per branch and multi-resolution fusion
-> final 1x1 conv on the highest-resolution branch. Stage2 has 1 module and 2 branches, stage3 4 modules and 3
branches, stage4 3 modules and 4 branches; the last module fuses only into the highest-resolution branch.

Stages (split points cut before each): ``stem``, ``stage1``, ``stage2``, ``stage3``, ``stage4``, ``final``.
Between stage2 and stage4 the features are lists of tensors, one per branch (highest resolution first).
"""

from __future__ import annotations

from typing import Sequence

import keras
from keras import layers

from semipose_tf.codec import DEFAULT_INPUT_SIZE
from semipose_tf.models.resnet import batch_norm, conv
from semipose_tf.models.simple_baseline import final_layer
from semipose_tf.models.staged import StagedPoseModel


def _init() -> keras.initializers.Initializer:  # The reference's init_weights for every conv (one per layer).
  return keras.initializers.RandomNormal(0.0, 0.001)


MODULES = {2: 1, 3: 4, 4: 3}  # High-resolution modules per stage.
BLOCKS = 4


def _conv_bn(x, filters, kernel, stride, name, relu=True, dtype=None):
  # resnet.conv: bias-free, torch-style symmetric padding for strided convolutions.
  x = batch_norm(f"{name}_bn", dtype)(conv(filters, kernel, stride, name, dtype, init=_init)(x))
  return layers.ReLU(name=f"{name}_relu", dtype=dtype)(x) if relu else x


def _basic(x, filters, name, dtype=None):
  y = _conv_bn(x, filters, 3, 1, f"{name}_conv1", dtype=dtype)
  y = _conv_bn(y, filters, 3, 1, f"{name}_conv2", relu=False, dtype=dtype)
  return layers.ReLU(name=f"{name}_out", dtype=dtype)(layers.Add(name=f"{name}_add", dtype=dtype)([x, y]))


def _bottleneck(x, planes, name, downsample, dtype=None):
  short = _conv_bn(x, planes * 4, 1, 1, f"{name}_down", relu=False, dtype=dtype) if downsample else x
  y = _conv_bn(x, planes, 1, 1, f"{name}_conv1", dtype=dtype)
  y = _conv_bn(y, planes, 3, 1, f"{name}_conv2", dtype=dtype)
  y = _conv_bn(y, planes * 4, 1, 1, f"{name}_conv3", relu=False, dtype=dtype)
  return layers.ReLU(name=f"{name}_out", dtype=dtype)(layers.Add(name=f"{name}_add", dtype=dtype)([short, y]))


def _fuse(xs, channels, name, multi_scale_output, dtype=None):
  outs = []
  for i in range(len(channels) if multi_scale_output else 1):
    terms = []
    for j, x in enumerate(xs):
      if j == i:
        terms.append(x)
      elif j > i:  # Lower resolution: 1x1 conv + BN, nearest upsampling.
        y = _conv_bn(x, channels[i], 1, 1, f"{name}_f{i}{j}", relu=False, dtype=dtype)
        terms.append(
          layers.UpSampling2D(2 ** (j - i), interpolation="nearest", name=f"{name}_f{i}{j}_up", dtype=dtype)(y)
        )
      else:  # Higher resolution: (i - j) 3x3/2 convs, ReLU between them.
        y = x
        for k in range(i - j):
          last = k == i - j - 1
          y = _conv_bn(y, channels[i] if last else channels[j], 3, 2, f"{name}_f{i}{j}_{k}", relu=not last, dtype=dtype)
        terms.append(y)
    s = terms[0] if len(terms) == 1 else layers.Add(name=f"{name}_sum{i}", dtype=dtype)(terms)
    outs.append(layers.ReLU(name=f"{name}_out{i}", dtype=dtype)(s))
  return outs


def _stage(stage: int, width: int, in_channels: Sequence[int], final: bool, dtype=None) -> keras.Model:
  """Transition from the previous stage's branches, then the stage's high-resolution modules."""
  channels = [width * 2**b for b in range(stage)]
  inputs = [keras.Input((None, None, c)) for c in in_channels]
  xs = []
  for b, c in enumerate(channels):  # Transition.
    if b < len(in_channels):
      x = inputs[b]
      xs.append(x if in_channels[b] == c else _conv_bn(x, c, 3, 1, f"s{stage}_trans{b}", dtype=dtype))
    else:
      xs.append(_conv_bn(inputs[-1], c, 3, 2, f"s{stage}_trans{b}", dtype=dtype))
  for m in range(MODULES[stage]):
    name = f"s{stage}_m{m}"
    xs = [_basic_chain(x, c, f"{name}_b{b}", dtype) for b, (x, c) in enumerate(zip(xs, channels))]
    xs = _fuse(xs, channels, name, multi_scale_output=not (final and m == MODULES[stage] - 1), dtype=dtype)
  return keras.Model(inputs if len(inputs) > 1 else inputs[0], xs if len(xs) > 1 else xs[0], name=f"stage{stage}")


def _basic_chain(x, c, name, dtype):
  for k in range(BLOCKS):
    x = _basic(x, c, f"{name}_{k}", dtype)
  return x


def _stem(dtype=None) -> keras.Model:
  inp = keras.Input((None, None, 3))
  x = _conv_bn(inp, 64, 3, 2, "stem_conv1", dtype=dtype)
  x = _conv_bn(x, 64, 3, 2, "stem_conv2", dtype=dtype)
  return keras.Model(inp, x, name="stem")


def _stage1(dtype=None) -> keras.Model:
  inp = keras.Input((None, None, 64))
  x = inp
  for k in range(4):
    x = _bottleneck(x, 64, f"s1_b{k}", downsample=k == 0, dtype=dtype)
  return keras.Model(inp, x, name="stage1")


@keras.saving.register_keras_serializable(package="semipose_tf")
class HRNet(StagedPoseModel):
  """HRNet-W{width} pose network: [N, H, W, 3] -> [N, H/4, W/4, K] float32 heatmaps (H, W divisible by 32).

  Args:
    width: Channels of the highest-resolution branch: 32 (HRNet-W32) or 48 (HRNet-W48).
    num_keypoints: K.
    input_shape: (H, W, 3).
    name, dtype, trainable: As for any Keras model.
  """

  def __init__(
    self,
    width: int = 32,
    num_keypoints: int = 17,
    input_shape: Sequence[int | None] = (*DEFAULT_INPUT_SIZE, 3),
    name: str | None = None,
    dtype=None,
    **kwargs,
  ):
    if width <= 0:
      raise ValueError(f"HRNet width must be positive, got {width}")
    stages = [
      ("stem", _stem(dtype)),
      ("stage1", _stage1(dtype)),
      ("stage2", _stage(2, width, [256], False, dtype)),
      ("stage3", _stage(3, width, [width, 2 * width], False, dtype)),
      ("stage4", _stage(4, width, [width, 2 * width, 4 * width], True, dtype)),
      ("final", final_layer(width, num_keypoints, dtype)),
    ]
    self._init_chain(stages, input_shape, name=name or f"hrnet_w{width}", dtype=dtype, **kwargs)
    self.width = width
    self.num_keypoints = num_keypoints
    self.image_shape = tuple(input_shape)

  @property
  def backbone_stages(self) -> tuple[str, ...]:
    return ("stem", "stage1", "stage2", "stage3", "stage4")

  def get_config(self):
    return {
      **self._base_config(),
      "width": self.width,
      "num_keypoints": self.num_keypoints,
      "input_shape": list(self.image_shape),
    }
