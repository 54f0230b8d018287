"""The paper's multi-step learning-rate schedules (x0.1 at given epochs)."""

from __future__ import annotations

from typing import Sequence

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="semipose_tf")
class MultiStepSchedule(keras.optimizers.schedules.LearningRateSchedule):
  """``base_lr * factor ** (number of milestones passed)``, milestones in epochs.

  Args:
    base_lr: Initial learning rate (1e-3 in the paper).
    milestones: Epochs at which the rate is multiplied by ``factor`` (COCO 1K: 20, 25).
    steps_per_epoch: Optimizer steps per epoch.
    factor: The multiplier (0.1).
  """

  def __init__(self, base_lr: float, milestones: Sequence[int], steps_per_epoch: int, factor: float = 0.1):
    self.base_lr = float(base_lr)
    self.milestones = [int(m) for m in milestones]
    self.steps_per_epoch = int(steps_per_epoch)
    self.factor = float(factor)

  def __call__(self, step):
    epoch = tf.cast(step, tf.float32) / float(max(self.steps_per_epoch, 1))
    passed = tf.reduce_sum(tf.cast(epoch >= tf.constant(self.milestones or [1e9], tf.float32), tf.float32))
    return self.base_lr * tf.pow(self.factor, passed)

  def get_config(self):
    return {
      "base_lr": self.base_lr,
      "milestones": self.milestones,
      "steps_per_epoch": self.steps_per_epoch,
      "factor": self.factor,
    }
