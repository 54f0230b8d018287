"""Batch normalization computed by TensorFlow's fused kernel: Keras's layer, the same weights and the same function.

Keras 3's ``BatchNormalization`` builds batch norm from separate ops (moments: Mean, SquaredDifference, Mean;
normalization: Sub, Mul, Add; and their gradients: Sum, Mul, Tile, ...). On a CPU those small memory-bound ops took
about a third of the EfficientNet-Lite0 training step (``benchmarks/profile_step.py``), where PyTorch runs one
fused kernel forward and one backward. This module's :class:`BatchNormalization` is that layer computed by
``FusedBatchNormV3`` and its gradient ``FusedBatchNormGradV3`` (oneDNN's on x86 CPUs, cuDNN's on GPUs), for the
common case: a 4-D channels-last input, scale and centre on, no mask, no renorm, not synchronized across replicas.
Anything else goes through Keras's own ``call``.

What it computes is Keras's: the normalization by the batch's biased variance in training and by the moving
statistics in inference, the moving averages updated with the biased variance and ``momentum`` as Keras does
(the fused kernel's ``batch_variance`` output carries Bessel's correction, which is undone here), the epsilon as
given (``tf.compat.v1.nn.fused_batch_norm`` would raise it to 1.001e-5), float32 arithmetic for float16 /
bfloat16 inputs. Values agree with Keras's layer to float32 rounding (``tests/test_models.py``). The class is
registered as ``semipose_tf>BatchNormalization``; checkpoints written with Keras's layer load into this one by
:func:`semipose_tf.models.factory.load_network`.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers


@keras.saving.register_keras_serializable(package="semipose_tf")
class BatchNormalization(layers.BatchNormalization):
  """``keras.layers.BatchNormalization`` through TensorFlow's fused batch-norm kernel (same arguments, weights and
  outputs; see the module docstring).

  Named as Keras's class on purpose: a ``.keras`` file keys each layer's weights by its class name
  (``batch_normalization_3``), so networks saved before and after the change keep the same weight paths.
  """

  def _fusable(self, inputs, mask) -> bool:
    return (
      keras.backend.backend() == "tensorflow"
      and mask is None
      and not self.renorm
      and not getattr(self, "synchronized", False)
      and self.scale
      and self.center
      and len(inputs.shape) == 4
      and self.axis in (3, -1)
    )

  def call(self, inputs, training=None, mask=None):
    if not self._fusable(inputs, mask):
      return super().call(inputs, training=training, mask=mask)
    x = tf.cast(inputs, tf.float32)  # As Keras: statistics in float32 whatever the compute dtype.
    gamma, beta = tf.cast(self.gamma, tf.float32), tf.cast(self.beta, tf.float32)
    if training and self.trainable:
      empty = tf.constant([], tf.float32)
      y, mean, unbiased, *_ = tf.raw_ops.FusedBatchNormV3(
        x=x, scale=gamma, offset=beta, mean=empty, variance=empty, epsilon=self.epsilon, is_training=True
      )
      # The kernel's batch variance is n / (n - 1) times the one it normalized by; Keras averages the latter.
      n = tf.cast(tf.reduce_prod(tf.shape(x)[:3]), tf.float32)
      variance = unbiased * (n - 1.0) / tf.maximum(n, 1.0)
      self.moving_mean.assign(
        tf.cast(self.moving_mean, tf.float32) * self.momentum + tf.stop_gradient(mean) * (1.0 - self.momentum)
      )
      self.moving_variance.assign(
        tf.cast(self.moving_variance, tf.float32) * self.momentum + tf.stop_gradient(variance) * (1.0 - self.momentum)
      )
    else:
      y, *_ = tf.raw_ops.FusedBatchNormV3(
        x=x,
        scale=gamma,
        offset=beta,
        mean=tf.cast(self.moving_mean, tf.float32),
        variance=tf.cast(self.moving_variance, tf.float32),
        epsilon=self.epsilon,
        is_training=False,
      )
    return tf.cast(y, self.compute_dtype)


def batch_norm(epsilon: float, momentum: float, name: str, dtype=None) -> BatchNormalization:
  """The batch norm of every network here (this module's fused :class:`BatchNormalization`)."""
  return BatchNormalization(epsilon=epsilon, momentum=momentum, name=name, dtype=dtype)
