"""One training run from gin's flat ``train.*`` bindings: :func:`train` maps them onto a :class:`TaskConfig`
(``train/task.py``: inputs, model, callbacks) and fits it, with the warm-up phase first when one is asked for.

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
import tensorflow as tf

from semipose_tf.console import fit_verbosity
from semipose_tf.data import records
from semipose_tf.method_config import MethodConfig
from semipose_tf.models.factory import build_pose_model
from semipose_tf.train import callbacks as cb
from semipose_tf.train import distribute, finish, recovery
from semipose_tf.train.task import (
  DataConfig,
  Experiment,
  FitConfig,
  OptimizerConfig,
  PoseTask,
  RuntimeConfig,
  TaskConfig,
  write_method_config,
)
from semipose_tf.train.teacher_student import SemiSupervisedPose


class TrainingDiverged(RuntimeError):
  """The loss became NaN or infinite."""


# The flat train.* names gin binds, by the part of the TaskConfig that holds them.
_PARTS = {"data": DataConfig, "optimizer": OptimizerConfig, "runtime": RuntimeConfig, "fit": FitConfig}
_OWN = {
  "work_dir",
  "labeled_dir",
  "unlabeled_dir",
  "val_dir",
  "picture_set",
  "data_root",
  "method",
  "method_config",
  "init_checkpoint",
  "pseudopose_teacher",
  "warmup_epochs",
  "extra_callbacks",
  "dry_run",
  "operative_config",
  "prepare_data",
  "model_fn",
  "ssl_model_fn",
}


def task_config(
  work_dir: str,
  labeled_dir: str,
  data_root: str | None = None,
  unlabeled_dir: str | None = None,
  val_dir: str | None = None,
  picture_set: str | None = None,
  method: str = "plus",
  method_config: MethodConfig | None = None,
  init_checkpoint: str | None = None,
  pseudopose_teacher: str | None = None,
  **settings,
) -> TaskConfig:
  """The :class:`TaskConfig` of :func:`train`'s flat arguments: every data path under ``data_root`` (resolved
  here, once), the method's name set into its configuration, each other setting given to the part that owns it."""
  fields = {name: {f.name for f in dataclasses.fields(part)} for name, part in _PARTS.items()}
  unknown = sorted(k for k in settings if not any(k in f for f in fields.values()))
  if unknown:
    known = sorted(_OWN - {"work_dir"} | set().union(*fields.values()))
    raise ValueError(
      f"unknown parameter train.{unknown[0]}"
      + (f" (and {unknown[1:]})" if unknown[1:] else "")
      + f"; train takes: {', '.join(known)}"
    )
  parts = {name: {k: v for k, v in settings.items() if k in fields[name]} for name in _PARTS}
  under = lambda path: records.under_root(data_root, path)  # noqa: E731
  data = DataConfig(under(labeled_dir), under(unlabeled_dir), under(val_dir), **parts["data"])
  fit = FitConfig(picture_set=under(picture_set), **parts["fit"])
  return TaskConfig(
    work_dir,
    data,
    dataclasses.replace(method_config or MethodConfig(), method=method),
    OptimizerConfig(**parts["optimizer"]),
    RuntimeConfig(**parts["runtime"]),
    fit,
    init_checkpoint=init_checkpoint,
    pseudopose_teacher=pseudopose_teacher,
  )


def train(
  work_dir: str,
  labeled_dir: str,
  epochs: int = 30,
  warmup_epochs: int = 0,
  extra_callbacks: Sequence[keras.callbacks.Callback] = (),
  dry_run: bool = False,
  operative_config: Callable[[], str] | None = None,
  prepare_data: Callable[[], object] | None = None,
  model_fn: Callable[..., keras.Model] = build_pose_model,
  ssl_model_fn: Callable[..., SemiSupervisedPose] = SemiSupervisedPose,
  **kwargs,
) -> keras.callbacks.History | Experiment:
  """Trains a pose network with a method of the paper; a killed run started again resumes.

  Args:
    work_dir: Output directory (checkpoints, backups, TensorBoard logs, configs).
    labeled_dir: Labeled TFRecord set (relative to ``data_root`` when that is set).
    epochs: Epochs; one epoch is one pass over the unlabeled set (the labeled set repeats).
    warmup_epochs: Beyond the paper, off (0) in the paper's experiment files: first train the network supervised
      (labeled data only, constant learning rate) for that many epochs into ``<work_dir>/warmup``, then start the
      method from it for ``epochs`` more; the unlabeled branches switch on only once the teacher has learned
      something. A finished warm-up is reused, so a killed run resumes in either phase.
    extra_callbacks: More callbacks (e.g. an evaluation callback); they run before checkpointing.
    dry_run: Build everything and return the :class:`Experiment` without training.
    operative_config: A function returning the operative config text to save (gin's, from the script).
    prepare_data: Called first, to make the data if it is missing (the demo binds the synthetic generator,
      :func:`semipose_tf.synthetic.generate.prepare`).
    model_fn: ``model_fn(input_size=, num_keypoints=, dtype=)`` -> a pose network.
    ssl_model_fn: ``ssl_model_fn(net, method_config, net2=, frozen_teacher=, seed=)`` -> the training model.
    **kwargs: The run's other settings, each owned by one part of the :class:`TaskConfig`
      (``train/task.py``):

      * paths: data_root, unlabeled_dir, val_dir, picture_set (relative to ``data_root``), init_checkpoint (a
        .keras network of the same architecture whose weights start the run, e.g. a supervised burn-in),
        pseudopose_teacher;
      * method: ``method`` (the preset) and ``method_config`` (:class:`~semipose_tf.method_config.MethodConfig`;
        gin binds its parts: ``Masking.mask_max``, ``Mixup.locations`` ...);
      * data (:class:`DataConfig`): spec, input_size, labeled_batch_size / unlabeled_batch_size (per replica),
        augment, subpixel_targets (centre the target Gaussians at the exact joint position; the reference rounds
        it to a heatmap pixel), conversion_hint;
      * optimizer (:class:`OptimizerConfig`): learning_rate, lr_milestones, lr_factor;
      * runtime (:class:`RuntimeConfig`): strategy ("auto", "one", "mirrored", "multi_worker"), mixed_precision
        (None, "mixed_float16", "mixed_bfloat16"), jit_compile, synchronized_bn, seed, deterministic (TensorFlow
        op determinism: a seeded run repeats bit for bit on one machine), steps_per_execution;
      * fit (:class:`FitConfig`): steps_per_epoch, backup_every_steps (None: every epoch), checkpoint_monitor
        ("val_AP" with a COCO evaluation callback) and checkpoint_mode, keep_every (also keep
        ``epoch_NNN.keras`` every that many epochs), log_every_steps, verbose, export (the final network as a
        SavedModel in ``<work_dir>/saved_model/1``), picture_set / picture_count (the final network's
        predictions on the first images of that set, in ``<work_dir>/predictions.png``).

  Returns:
    The Keras History (or the Experiment with ``dry_run``).

  Raises:
    FileNotFoundError: a TFRecord set is missing; the message gives the conversion command.
    TrainingDiverged: the loss became NaN / infinite.
    ValueError: a setting is out of range or unknown (one line naming ``train.<name>``).
  """
  if isinstance(warmup_epochs, bool) or not isinstance(warmup_epochs, int) or warmup_epochs < 0:
    raise ValueError(f"train.warmup_epochs must be a whole number >= 0, got {warmup_epochs!r}")
  config = task_config(work_dir, labeled_dir, epochs=epochs, **kwargs)
  if prepare_data is not None:
    prepare_data()
  if dry_run:
    exp = PoseTask(config, model_fn, ssl_model_fn).build()
    exp.extra_callbacks = list(extra_callbacks)
    return exp
  callbacks = list(extra_callbacks)
  if warmup_epochs and PoseTask(config).preset.unlabeled:
    warm = config.warmup(warmup_epochs)
    final = os.path.join(warm.work_dir, "checkpoints", "final.keras")
    if not os.path.exists(final):
      print(
        f"Supervised warm-up: {warmup_epochs} epochs on the labeled data before the unlabeled branches switch "
        f"on ({warm.work_dir})"
      )
      run(warm, callbacks, operative_config, model_fn, ssl_model_fn)
    # The untrained network was measured before the warm-up; the method's phase does not measure it again.
    callbacks = [_without_start(c) for c in callbacks]
    before = os.path.join(warm.work_dir, "before_training.json")
    if os.path.exists(before) and not os.path.exists(os.path.join(work_dir, "before_training.json")):
      os.makedirs(work_dir, exist_ok=True)
      shutil.copyfile(before, os.path.join(work_dir, "before_training.json"))
    print(f"Warm-up done; the {config.method.method} method starts from {final}")
    config = dataclasses.replace(config, init_checkpoint=final)
  return run(config, callbacks, operative_config, model_fn, ssl_model_fn)


def _without_start(callback: keras.callbacks.Callback) -> keras.callbacks.Callback:
  if not getattr(callback, "at_start", False):
    return callback
  phase = copy.copy(callback)  # The caller's callback keeps its setting.
  phase.at_start = False
  return phase


def run(
  config: TaskConfig,
  extra_callbacks: Sequence[keras.callbacks.Callback] = (),
  operative_config: Callable[[], str] | None = None,
  model_fn: Callable[..., keras.Model] = build_pose_model,
  ssl_model_fn: Callable[..., SemiSupervisedPose] = SemiSupervisedPose,
) -> keras.callbacks.History:
  """Builds the task of ``config`` and fits it under the work directory's lock (a second run is refused)."""
  exp = PoseTask(config, model_fn, ssl_model_fn).build()
  chief = distribute.is_chief()
  out_dir = config.work_dir if chief else os.path.join(config.work_dir, f"worker_{distribute.worker_index()}")
  with recovery.WorkDirLock(out_dir):
    return _fit(exp, config, out_dir, chief, list(extra_callbacks), operative_config)


def _fit(
  exp: Experiment,
  config: TaskConfig,
  out_dir: str,
  chief: bool,
  extra_callbacks: list,
  operative_config: Callable[[], str] | None,
) -> keras.callbacks.History:
  """Fits with the callbacks of a run and writes its final outputs."""
  fit, work_dir = config.fit, config.work_dir
  ckpt_dir = os.path.join(work_dir, "checkpoints")
  restart = (
    f"Start again from the last checkpoint: remove {os.path.join(out_dir, 'backup')} and train with "
    f"train.init_checkpoint = '{os.path.join(ckpt_dir, 'last.keras')}' (weights only; the optimizer and "
    "the schedule start over), or remove the work directory to start from scratch."
  )
  guard = cb.NaNGuard()
  backup = recovery.Backup(
    os.path.join(out_dir, "backup"), save_freq=fit.backup_every_steps or "epoch", restart_hint=restart
  )
  callbacks = [backup, guard, *extra_callbacks]
  callbacks.append(cb.MonitorCheck(fit.checkpoint_monitor, list(extra_callbacks), exp.val_data is not None))
  checkpoint = None
  if chief:
    write_method_config(work_dir, exp.model.method_config)
    log_dir = os.path.join(work_dir, "logs")
    checkpoint = cb.PoseCheckpoint(exp.model.net, ckpt_dir, fit.checkpoint_monitor, fit.checkpoint_mode, fit.keep_every)
    callbacks += [
      checkpoint,
      keras.callbacks.TensorBoard(log_dir),
      cb.FiniteCSVLogger(os.path.join(work_dir, "history.csv"), append=True),
      cb.SemiSupervisedSummaries(log_dir, exp.probe, exp.spec, every_steps=fit.log_every_steps),
    ]
    if operative_config is not None:  # Gin knows the operative bindings once the step has run.
      callbacks.append(cb.WriteOnce(os.path.join(work_dir, "operative_config.gin"), operative_config))
  callbacks.append(recovery.EpochDone(backup))  # Last: an epoch is done once everything above has seen it.

  try:
    history = exp.model.fit(
      exp.train_data,
      epochs=fit.epochs,
      steps_per_epoch=exp.steps_per_epoch,
      validation_data=exp.val_data,
      validation_steps=exp.val_steps,
      callbacks=callbacks,
      verbose=fit_verbosity(fit.verbose),  # A plain line per epoch when the output is a file.
      shuffle=False,
    )  # tf.data shuffles.
  except tf.errors.DataLossError:
    # TFRecord's message ("corrupted record at 1159245") names no file: find the shard, name it and its set.
    sets = list(exp.data_dirs) + [d for c in extra_callbacks for d in getattr(c, "data_dirs", ())]
    error = records.corrupt_set_error(sets)
    if error is None:
      raise
    raise error from None
  if guard.message:
    good = checkpoint.last_good if checkpoint else None
    raise TrainingDiverged(
      guard.message
      + (
        f" Nothing non-finite was saved: the last good checkpoint is {good}."
        if good
        else " Nothing non-finite was saved (no checkpoint yet)."
      )
      + (
        " The backup holds the last finite state, so the same command resumes from there."
        if backup.has_generation
        else " No backup was written before it diverged: the same command starts over."
      )
    )
  if chief:
    finish.write_outputs(
      exp.model.net,
      exp.spec,
      work_dir,
      extra_callbacks,
      operative_config,
      fit.export,
      fit.picture_set,
      fit.picture_count,
    )
  return history


__all__ = ["Experiment", "TrainingDiverged", "run", "task_config", "train"]
