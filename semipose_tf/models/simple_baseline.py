"""SimpleBaseline (Xiao et al.): ResNet + three stride-2 transposed convolutions + a 1x1 heatmap conv."""

from __future__ import annotations

from typing import Sequence

import keras
from keras import layers

from semipose_tf.codec import DEFAULT_INPUT_SIZE
from semipose_tf.models import resnet
from semipose_tf.models.staged import StagedPoseModel


def head_init() -> keras.initializers.Initializer:
  """The reference's init for deconv and final layers; a new one per layer (see :func:`resnet.conv_init`)."""
  return keras.initializers.RandomNormal(0.0, 0.001)


def deconv_head(in_channels: int, filters: Sequence[int] = (256, 256, 256), kernel: int = 4, dtype=None) -> keras.Model:
  """Transposed conv (k4, s2, no bias) + BN + ReLU, per entry of ``filters``: x2 resolution each."""
  inp = keras.Input((None, None, in_channels))
  x = inp
  for i, f in enumerate(filters):
    x = layers.Conv2DTranspose(
      f,
      kernel,
      strides=2,
      padding="same",
      use_bias=False,
      kernel_initializer=head_init(),
      name=f"deconv{i}",
      dtype=dtype,
    )(x)
    x = resnet.batch_norm(f"deconv{i}_bn", dtype)(x)
    x = layers.ReLU(name=f"deconv{i}_relu", dtype=dtype)(x)
  return keras.Model(inp, x, name="deconv")


def final_layer(in_channels: int, num_keypoints: int, dtype=None) -> keras.Model:
  """1x1 conv to K heatmaps, output cast to float32 (so mixed-precision models give float32 heatmaps)."""
  inp = keras.Input((None, None, in_channels))
  x = layers.Conv2D(
    num_keypoints, 1, kernel_initializer=head_init(), bias_initializer="zeros", name="final_conv", dtype=dtype
  )(inp)
  x = layers.Activation("linear", dtype="float32", name="heatmaps")(x)
  return keras.Model(inp, x, name="final")


@keras.saving.register_keras_serializable(package="semipose_tf")
class SimpleBaseline(StagedPoseModel):
  """SimpleBaseline pose network.

  Stages (split points cut before each): ``stem``, ``layer1`` .. ``layer4``, ``deconv``, ``final``.
  Input [N, H, W, 3] ImageNet-normalized RGB; output [N, H/4, W/4, K] float32 heatmaps.

  Args:
    depth: ResNet depth, 18, 34, 50, 101 or 152.
    num_keypoints: K.
    input_shape: (H, W, 3); spatial sizes may be None.
    deconv_filters: Filters of each transposed convolution.
    deconv_kernel: Kernel size of the transposed convolutions (4 in the reference).
    width: Base width of the ResNet (64: the standard network, which pretrained weights need; smaller widths
      make the small, fast networks of the demo and the synthetic benchmark).
    name, dtype, trainable: As for any Keras model; ``dtype`` may be a mixed policy ("mixed_bfloat16").
  """

  def __init__(
    self,
    depth: int = 18,
    num_keypoints: int = 17,
    input_shape: Sequence[int | None] = (*DEFAULT_INPUT_SIZE, 3),
    deconv_filters: Sequence[int] = (256, 256, 256),
    deconv_kernel: int = 4,
    width: int = 64,
    name: str | None = None,
    dtype=None,
    **kwargs,
  ):
    resnet.check_depth(depth, width)
    stages = [("stem", resnet.stem(dtype, width))]
    stages += [(f"layer{i + 1}", resnet.layer(depth, i, dtype, width)) for i in range(4)]
    stages.append(("deconv", deconv_head(resnet.out_channels(depth, 3, width), deconv_filters, deconv_kernel, dtype)))
    stages.append(("final", final_layer(deconv_filters[-1], num_keypoints, dtype)))
    default_name = f"simple_baseline_r{depth}" + ("" if width == 64 else f"_w{width}")
    self._init_chain(stages, input_shape, name=name or default_name, dtype=dtype, **kwargs)
    self.depth = depth
    self.num_keypoints = num_keypoints
    self.image_shape = tuple(input_shape)
    self.deconv_filters = tuple(deconv_filters)
    self.deconv_kernel = deconv_kernel
    self.width = int(width)

  @property
  def backbone_stages(self) -> tuple[str, ...]:
    return ("stem", "layer1", "layer2", "layer3", "layer4")

  def get_config(self):
    return {
      **self._base_config(),
      "depth": self.depth,
      "num_keypoints": self.num_keypoints,
      "input_shape": list(self.image_shape),
      "deconv_filters": list(self.deconv_filters),
      "deconv_kernel": self.deconv_kernel,
      "width": self.width,
    }
