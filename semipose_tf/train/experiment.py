"""One training run: :func:`train` takes the typed configuration (``train/config.py``; gin binds its classes) and
runs its :class:`~semipose_tf.train.task.PoseTask`, with the warm-up phase first when one is asked for.

Work directory layout::

  <work_dir>/config.gin             the gin config as parsed (written at start)
  <work_dir>/operative_config.gin   the bindings actually used (written once training starts and at the end)
  <work_dir>/method_config.json     the method and every setting of its step (semipose_tf/method_config.py)
  <work_dir>/checkpoints/           last.keras (every epoch), best.keras (best monitored metric), final.keras
  <work_dir>/backup/                current/ and previous/ backups (weights, optimizer, step): a killed run
                                    started again resumes from the newest whole one (train/recovery.py)
  <work_dir>/checkpoints/best.json  the best monitored value and its epoch (kept across resumes)
  <work_dir>/.lock                  held by the running process (pid, host); a second run is refused
  <work_dir>/logs/                  TensorBoard: losses, learning rate, mask-count histogram, probe pictures
  <work_dir>/history.csv            every epoch's logged values (losses, mask count, val_AP, ...)
  <work_dir>/before_training.json   the metrics of the untrained network, when the evaluation asks for them
  <work_dir>/saved_model/1/         with ``export=True``: the final network as a SavedModel (TF Serving layout)
  <work_dir>/predictions.png        with ``picture_set``: predictions of the final network on that set's images
"""

from __future__ import annotations

import copy
import dataclasses
import os
import shutil
from typing import Callable, Sequence

import keras

from semipose_tf.method_config import MethodConfig
from semipose_tf.models.factory import build_pose_model
from semipose_tf.train.config import DataConfig, FitConfig, OptimizerConfig, RuntimeConfig, TaskConfig
from semipose_tf.train.methods import get_method
from semipose_tf.train.task import Experiment, PoseTask, TrainingDiverged
from semipose_tf.train.teacher_student import SemiSupervisedPose


def train(
  work_dir: str,
  data: DataConfig,
  method: MethodConfig | None = None,
  optimizer: OptimizerConfig | None = None,
  runtime: RuntimeConfig | None = None,
  fit: FitConfig | None = None,
  init_checkpoint: str | None = None,
  pseudopose_teacher: str | None = None,
  warmup_epochs: int = 0,
  extra_callbacks: Sequence[keras.callbacks.Callback] = (),
  dry_run: bool = False,
  operative_config: Callable[[], str] | None = None,
  prepare_data: Callable[[], object] | None = None,
  model_fn: Callable[..., keras.Model] = build_pose_model,
  ssl_model_fn: Callable[..., SemiSupervisedPose] = SemiSupervisedPose,
) -> keras.callbacks.History | Experiment:
  """Trains a pose network with a method of the paper; a killed run started again resumes.

  Args:
    work_dir: Output directory (checkpoints, backups, TensorBoard logs, configs).
    data: The sets and crops (:class:`~semipose_tf.train.config.DataConfig`; paths under its ``data_root``).
    method: The method preset and every constant of its step (default: ``plus`` with the paper's values).
    optimizer: Adam and its schedule. runtime: strategy, precision, seed, determinism. fit: length, checkpoints,
      logging, export and pictures (each a ``train/config.py`` class; the defaults when None).
    init_checkpoint: A ``.keras`` network of the same architecture whose weights start the run (a burn-in).
    pseudopose_teacher: The frozen supervised network of the "pseudopose" preset.
    warmup_epochs: Beyond the paper, off (0) in the paper's experiment files: first train the network supervised
      (labeled data only, constant learning rate) for that many epochs into ``<work_dir>/warmup``, then start the
      method from it for ``fit.epochs`` more; the unlabeled branches switch on only once the teacher has learned
      something. A finished warm-up is reused, so a killed run resumes in either phase.
    extra_callbacks: The run's evaluators (e.g. a COCO evaluation callback); they run before checkpointing.
    dry_run: Build everything and return the :class:`Experiment` without training.
    operative_config: A function returning the operative config text to save (gin's, from the script).
    prepare_data: Called first, to make the data if it is missing (the demo binds the synthetic generator).
    model_fn: ``model_fn(input_size=, num_keypoints=, dtype=)`` -> a pose network.
    ssl_model_fn: ``ssl_model_fn(net, method_config, net2=, frozen_teacher=, seed=)`` -> the training model.

  Returns:
    The Keras History (or the Experiment with ``dry_run``).

  Raises:
    FileNotFoundError: a TFRecord set is missing; the message gives the conversion command.
    TrainingDiverged: the loss became NaN / infinite.
    ValueError: a setting is out of range or unknown (one line naming the binding).
  """
  if isinstance(warmup_epochs, bool) or not isinstance(warmup_epochs, int) or warmup_epochs < 0:
    raise ValueError(f"train.warmup_epochs must be a whole number >= 0, got {warmup_epochs!r}")
  parts = dict(method=method or MethodConfig(), optimizer=optimizer or OptimizerConfig(),
               runtime=runtime or RuntimeConfig(), fit=fit or FitConfig())  # fmt: skip
  config = TaskConfig(work_dir, data, **parts, init_checkpoint=init_checkpoint,
                      pseudopose_teacher=pseudopose_teacher).resolved()  # fmt: skip
  if prepare_data is not None:
    prepare_data()
  if dry_run:
    exp = PoseTask(config, model_fn, ssl_model_fn).build()
    exp.extra_callbacks = list(extra_callbacks)
    return exp
  callbacks = list(extra_callbacks)
  if warmup_epochs and get_method(config.method.method).unlabeled:
    warm = config.warmup(warmup_epochs)
    final = os.path.join(warm.work_dir, "checkpoints", "final.keras")
    if not os.path.exists(final):
      print(
        f"Supervised warm-up: {warmup_epochs} epochs on the labeled data before the unlabeled branches switch "
        f"on ({warm.work_dir})"
      )
      PoseTask(warm, model_fn, ssl_model_fn).run(callbacks, operative_config)
    # The untrained network was measured before the warm-up; the method's phase does not measure it again.
    callbacks = [_without_start(c) for c in callbacks]
    before = os.path.join(warm.work_dir, "before_training.json")
    if os.path.exists(before) and not os.path.exists(os.path.join(work_dir, "before_training.json")):
      os.makedirs(work_dir, exist_ok=True)
      shutil.copyfile(before, os.path.join(work_dir, "before_training.json"))
    print(f"Warm-up done; the {config.method.method} method starts from {final}")
    config = dataclasses.replace(config, init_checkpoint=final)
  return PoseTask(config, model_fn, ssl_model_fn).run(callbacks, operative_config)


def _without_start(callback: keras.callbacks.Callback) -> keras.callbacks.Callback:
  if not getattr(callback, "at_start", False):
    return callback
  phase = copy.copy(callback)  # The caller's callback keeps its setting.
  phase.at_start = False
  return phase


__all__ = ["Experiment", "TrainingDiverged", "train"]
