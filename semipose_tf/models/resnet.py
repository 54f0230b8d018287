"""ResNet v1 stages (torchvision / reference architecture) with keras-hub's layer names.

The layers are named exactly as in ``keras_hub.models.ResNetBackbone`` (``conv1_conv``, ``stack0_block0_1_conv``,
...), so a keras-hub ImageNet preset loads by name, and padding is explicit (torch style), so torchvision weights
give the same features. Stride sits on the 3x3 convolution of bottleneck blocks (torchvision's "v1.5").
"""

from __future__ import annotations

import keras
from keras import layers

from semipose_tf.models.batch_norm import batch_norm as fused_batch_norm

DEPTHS = {
  18: ("basic", (2, 2, 2, 2)),
  34: ("basic", (3, 4, 6, 3)),
  50: ("bottleneck", (3, 4, 6, 3)),
  101: ("bottleneck", (3, 4, 23, 3)),
  152: ("bottleneck", (3, 8, 36, 3)),
}


def conv_init() -> keras.initializers.Initializer:
  """torchvision's init for convolutions: kaiming normal, fan_out, relu. A new initializer per layer: a Keras 3
  initializer draws its seed once, when it is made, and gives every layer it initializes the same values, so a
  shared module-level instance made every same-shaped kernel identical and its seed (drawn at import, before
  ``keras.utils.set_random_seed``) changed from run to run."""
  return keras.initializers.VarianceScaling(2.0, mode="fan_out", distribution="untruncated_normal")


def batch_norm(name: str, dtype=None) -> layers.Layer:
  # torch BatchNorm2d defaults: eps 1e-5, momentum 0.1 (= Keras 0.9).
  return fused_batch_norm(epsilon=1e-5, momentum=0.9, name=name, dtype=dtype)


def conv(filters: int, kernel: int, stride: int, name: str, dtype=None, init=conv_init):
  """A bias-free conv with torch-style symmetric padding; returns a function of the input. ``init`` makes the
  kernel initializer (called once per layer)."""

  def apply(x):
    if stride > 1 and kernel > 1:
      x = layers.ZeroPadding2D((kernel - 1) // 2, name=f"{name}_pad", dtype=dtype)(x)
      padding = "valid"
    else:
      padding = "same"
    return layers.Conv2D(
      filters,
      kernel,
      strides=stride,
      padding=padding,
      use_bias=False,
      kernel_initializer=init(),
      name=name,
      dtype=dtype,
    )(x)

  return apply


def basic_block(x, filters: int, stride: int, shortcut: bool, name: str, dtype=None):
  short = x
  if shortcut:
    short = batch_norm(f"{name}_0_bn", dtype)(conv(filters, 1, stride, f"{name}_0_conv", dtype)(x))
  x = conv(filters, 3, stride, f"{name}_1_conv", dtype)(x)
  x = layers.ReLU(name=f"{name}_1_relu", dtype=dtype)(batch_norm(f"{name}_1_bn", dtype)(x))
  x = batch_norm(f"{name}_2_bn", dtype)(conv(filters, 3, 1, f"{name}_2_conv", dtype)(x))
  x = layers.Add(name=f"{name}_add", dtype=dtype)([short, x])
  return layers.ReLU(name=f"{name}_out", dtype=dtype)(x)


def bottleneck_block(x, filters: int, stride: int, shortcut: bool, name: str, dtype=None):
  short = x
  if shortcut:
    short = batch_norm(f"{name}_0_bn", dtype)(conv(4 * filters, 1, stride, f"{name}_0_conv", dtype)(x))
  x = conv(filters, 1, 1, f"{name}_1_conv", dtype)(x)
  x = layers.ReLU(name=f"{name}_1_relu", dtype=dtype)(batch_norm(f"{name}_1_bn", dtype)(x))
  x = conv(filters, 3, stride, f"{name}_2_conv", dtype)(x)
  x = layers.ReLU(name=f"{name}_2_relu", dtype=dtype)(batch_norm(f"{name}_2_bn", dtype)(x))
  x = batch_norm(f"{name}_3_bn", dtype)(conv(4 * filters, 1, 1, f"{name}_3_conv", dtype)(x))
  x = layers.Add(name=f"{name}_add", dtype=dtype)([short, x])
  return layers.ReLU(name=f"{name}_out", dtype=dtype)(x)


def stack_filters(stack: int, width: int = 64) -> int:
  """Filters of stack ``stack`` (0..3) for base width ``width`` (64: the standard ResNet)."""
  return width * 2**stack


def stem(dtype=None, width: int = 64) -> keras.Model:
  """conv 7x7/2 (width) + BN + ReLU + max-pool 3x3/2: [N, H, W, 3] -> [N, H/4, W/4, width]."""
  inp = keras.Input((None, None, 3))
  x = conv(width, 7, 2, "conv1_conv", dtype)(inp)
  x = layers.ReLU(name="conv1_relu", dtype=dtype)(batch_norm("conv1_bn", dtype)(x))
  x = layers.ZeroPadding2D(1, name="pool1_pad", dtype=dtype)(x)
  x = layers.MaxPooling2D(3, strides=2, name="pool1_pool", dtype=dtype)(x)
  return keras.Model(inp, x, name="stem")


def out_channels(depth: int, stack: int, width: int = 64) -> int:
  kind, _ = DEPTHS[depth]
  return stack_filters(stack, width) * (4 if kind == "bottleneck" else 1)


def layer(depth: int, stack: int, dtype=None, width: int = 64) -> keras.Model:
  """torchvision's ``layer{stack + 1}``: keras-hub's ``stack{stack}`` (``width`` 64 is the standard ResNet)."""
  kind, blocks = DEPTHS[depth]
  in_ch = width if stack == 0 else out_channels(depth, stack - 1, width)
  inp = keras.Input((None, None, in_ch))
  x = inp
  block = basic_block if kind == "basic" else bottleneck_block
  for b in range(blocks[stack]):
    first = b == 0
    shortcut = first and (kind == "bottleneck" or stack > 0)
    x = block(
      x, stack_filters(stack, width), 2 if first and stack > 0 else 1, shortcut, f"stack{stack}_block{b}", dtype
    )
  return keras.Model(inp, x, name=f"layer{stack + 1}")


def check_depth(depth: int, width: int = 64) -> None:
  if depth not in DEPTHS:
    raise ValueError(f"ResNet depth must be one of {sorted(DEPTHS)}, got {depth}")
  if int(width) < 1:
    raise ValueError(f"ResNet width must be a positive number of filters, got {width}")
