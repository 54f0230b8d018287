"""A tiny staged pose network for fast trainer tests (optionally without batch norm)."""

import keras
from keras import layers

from semipose_tf.models.staged import StagedPoseModel


def _stage(name, in_ch, out_ch, stride, bn, transpose=False):
  inp = keras.Input((None, None, in_ch))
  conv = layers.Conv2DTranspose if transpose else layers.Conv2D
  x = conv(out_ch, 3, strides=stride, padding="same", use_bias=not bn, name=f"{name}_conv")(inp)
  if bn:
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
  return keras.Model(inp, layers.ReLU()(x), name=name)


@keras.saving.register_keras_serializable(package="semipose_tf_tests")
class TinyPoseNet(StagedPoseModel):
  """[N, H, W, 3] -> [N, H/4, W/4, K]; stages stem, layer1, layer2, layer3, deconv, final."""

  def __init__(self, num_keypoints=17, input_shape=(64, 64, 3), batch_norm=False, name=None, dtype=None, **kwargs):
    inp = keras.Input((None, None, 16))
    final = keras.Model(
      inp,
      layers.Activation("linear", dtype="float32")(layers.Conv2D(num_keypoints, 1, name="final_conv")(inp)),
      name="final",
    )
    stages = [
      ("stem", _stage("stem", 3, 8, 2, batch_norm)),
      ("layer1", _stage("layer1", 8, 16, 2, batch_norm)),
      ("layer2", _stage("layer2", 16, 16, 2, batch_norm)),
      ("layer3", _stage("layer3", 16, 16, 1, batch_norm)),
      ("deconv", _stage("deconv", 16, 16, 2, batch_norm, transpose=True)),
      ("final", final),
    ]
    self._init_chain(stages, input_shape, name=name or "tiny", dtype=dtype, **kwargs)
    self.num_keypoints, self.image_shape, self.batch_norm = num_keypoints, tuple(input_shape), batch_norm

  def get_config(self):
    return {
      **self._base_config(),
      "num_keypoints": self.num_keypoints,
      "input_shape": list(self.image_shape),
      "batch_norm": self.batch_norm,
    }


def tiny_model_fn(input_size=(64, 64), num_keypoints=17, dtype=None, batch_norm=False):
  """A ``model_fn`` for ``train()``."""
  return TinyPoseNet(num_keypoints, (input_size[0], input_size[1], 3), batch_norm=batch_norm, dtype=dtype)
