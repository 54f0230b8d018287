"""One run as a task with named parts (TF Model Garden's Task): inputs, model, evaluators' callbacks, fit, outputs.

:class:`PoseTask` takes a :class:`~semipose_tf.train.config.TaskConfig` (data, method, optimizer, runtime, fit;
``train/config.py``) and owns the run: :meth:`PoseTask.build` checks the sets and makes the inputs and the model
(datasets before networks, so that a seeded run repeats), :meth:`PoseTask.build_callbacks` the backup, NaN guard,
checkpoints and logs, :meth:`PoseTask.fit` trains under the work directory's lock and :meth:`PoseTask.write_outputs`
writes the final network, the SavedModel and the pictures. A warm-up is the same task with a supervised method and
a constant learning rate (:meth:`TaskConfig.warmup`), so both phases of a run go through one path.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable, Sequence

import keras
import tensorflow as tf

from semipose_tf import atomic
from semipose_tf.augment.affine import NONE
from semipose_tf.codec import HeatmapCodec
from semipose_tf.console import fit_verbosity
from semipose_tf.data import pipeline, records
from semipose_tf.keypoints import KeypointSpec, get_spec
from semipose_tf.method_config import MethodConfig
from semipose_tf.models.factory import build_pose_model, load_network
from semipose_tf.train import callbacks as cb
from semipose_tf.train import determinism, distribute, finish, recovery
from semipose_tf.train.config import DataConfig, FitConfig, OptimizerConfig, RuntimeConfig, TaskConfig
from semipose_tf.train.methods import get_method
from semipose_tf.train.schedules import MultiStepSchedule
from semipose_tf.train.teacher_student import SemiSupervisedPose

METHOD_CONFIG_FILE = "method_config.json"


class TrainingDiverged(RuntimeError):
  """The loss became NaN or infinite."""


@dataclasses.dataclass
class Experiment:
  """What :meth:`PoseTask.build` assembles (and ``train(dry_run=True)`` returns)."""

  model: SemiSupervisedPose
  strategy: tf.distribute.Strategy
  train_data: tf.data.Dataset
  val_data: tf.data.Dataset | None
  val_steps: int | None
  probe: Callable[[], dict] | None  # The pictures' batch, made on first use (a run without pictures never pays).
  steps_per_epoch: int
  spec: KeypointSpec
  work_dir: str
  data_dirs: tuple = ()  # The TFRecord sets it reads (labeled, unlabeled, validation).
  extra_callbacks: list = dataclasses.field(default_factory=list)  # The run's own (evaluation) callbacks.


def _check_set(path: str, what: str, hint: str) -> records.RecordSet:
  """The set, its manifest read; a missing or incomplete set is an error naming it and how to convert it."""
  try:
    data = records.RecordSet(path)
    data.manifest  # noqa: B018 (read now, so that the error comes before any building)
    return data
  except records.IncompleteSetError as e:
    raise FileNotFoundError(f"the {what} TFRecord set is missing or incomplete: {e}\n{hint}") from None


def _check_people(path: str | records.RecordSet, binding: str, batch: int, what: str) -> None:
  """A set that a run batches with ``drop_remainder`` must hold at least one batch (an empty one hung, a smaller one
  gave no batch)."""
  n = pipeline.num_instances(path)
  if n < batch:
    raise ValueError(
      f"{binding} {path} holds {n} {what}, fewer than one batch of {batch}: add people to the set or lower the "
      "batch size"
    )


class PoseTask:
  """Builds and fits one run.

  Args:
    config: The run.
    model_fn: ``model_fn(input_size=, num_keypoints=, dtype=)`` -> a pose network (default
      :func:`build_pose_model` with gin's bindings).
    ssl_model_fn: ``ssl_model_fn(net, method_config, net2=, frozen_teacher=, seed=)`` -> the training model.
  """

  def __init__(
    self,
    config: TaskConfig,
    model_fn: Callable[..., keras.Model] = build_pose_model,
    ssl_model_fn: Callable[..., SemiSupervisedPose] = SemiSupervisedPose,
  ):
    self.config, self.model_fn, self.ssl_model_fn = config, model_fn, ssl_model_fn
    self.preset = get_method(config.method.method)
    # The run's one codec: the pipeline encodes with it; the network is built at its input size.
    self.codec = HeatmapCodec(config.data.input_size)
    self.sets: dict[str, records.RecordSet] = {}  # The run's TFRecord sets by role, read once (check_inputs).

  # --- The parts. ------------------------------------------------------------------------------------------------

  def check_inputs(self) -> dict[str, records.RecordSet]:
    """Every set the run reads exists and is complete (a clear error with the conversion command otherwise).

    Returns the sets by role (``labeled``, ``unlabeled``, ``val``), each read once; they are also kept as
    ``self.sets`` for :meth:`build_inputs`.
    """
    data = self.config.data
    hint = data.conversion_hint or "Convert the data with: python scripts/make_tfrecords.py --help"
    self.sets = {"labeled": _check_set(data.labeled_dir, "labeled", hint)}
    manifest = self.sets["labeled"].manifest
    labels = manifest.get("labels", "used")
    if labels == "removed from the records" or labels.startswith("none"):
      raise ValueError(
        f"DataConfig.labeled_dir {data.labeled_dir} holds no labels (its manifest: labels {labels}): it is an "
        "unlabeled set; convert a labeled one with make_tfrecords.py ... --sets labeled"
      )
    if int(manifest["num_instances"]) == 0:
      raise ValueError(f"DataConfig.labeled_dir {data.labeled_dir} holds no person")
    if self.preset.unlabeled:
      if data.unlabeled_dir is None:
        raise ValueError(f"method {self.preset.name!r} needs an unlabeled set: bind DataConfig.unlabeled_dir")
      self.sets["unlabeled"] = _check_set(data.unlabeled_dir, "unlabeled", hint)
    if data.val_dir is not None:
      self.sets["val"] = _check_set(data.val_dir, "validation", hint)
    return self.sets

  def build_inputs(self, replicas: int, strategy: tf.distribute.Strategy) -> dict:
    """The training stream, the validation set, the pictures' probe batch (a function that makes it on first call:
    building its stream traces the augmentation once more), the steps per epoch."""
    data, seed = self.config.data, self.config.runtime.seed
    config = pipeline.PipelineConfig(self.codec, augment=data.augment, subpixel_targets=data.subpixel_targets)
    spec = get_spec(data.spec)
    sets = self.sets or self.check_inputs()
    labeled, unlabeled = sets["labeled"], sets.get("unlabeled", data.unlabeled_dir)
    gl, gu = data.labeled_batch_size * replicas, data.unlabeled_batch_size * replicas
    steps = self.config.fit.steps_per_epoch
    if steps is None:
      source, batch = (unlabeled, gu) if unlabeled else (labeled, gl)
      steps = max(1, pipeline.steps_per_epoch(source, batch))
    oracle = self.preset.teacher == "labels"
    if self.preset.unlabeled:
      _check_people(unlabeled, "DataConfig.unlabeled_dir", gu, "unlabeled people")
      stream = pipeline.semi_supervised_dataset(
        labeled, unlabeled, spec, gl, gu, config, seed=seed, repeat=True, unlabeled_targets=oracle
      )

      # The pictures' batch: what the step's teacher reads (with the ground truth for the "labels" teacher).
      def probe():
        probe_set = (
          pipeline.labeled_dataset(unlabeled, spec, 4, config, seed=seed + 99)
          if oracle
          else pipeline.unlabeled_dataset(unlabeled, None, 4, config, seed=seed + 99, repeat=True)
        )
        return next(iter(probe_set))
    else:
      stream = pipeline.labeled_dataset(labeled, spec, gl, config, seed=seed).map(lambda ex: {"labeled": ex})
      probe = None
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
      options = tf.data.Options()
      options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
      stream = stream.with_options(options)
    val, val_steps = None, None
    if "val" in sets:
      val = pipeline.labeled_dataset(
        sets["val"],
        spec,
        gl,
        dataclasses.replace(config, augment=NONE),
        repeat=False,
        shuffle=False,
        drop_remainder=False,
      )
      val_steps = -(-sets["val"].num_instances // gl)  # Every batch, so Keras never runs past the end.
    return {"train_data": stream, "val_data": val, "val_steps": val_steps, "probe": probe, "steps_per_epoch": steps}

  def build_network(self, spec: KeypointSpec) -> keras.Model:
    """One pose network of the run (call inside the strategy's scope)."""
    net = self.model_fn(
      input_size=self.codec.input_size, num_keypoints=spec.num_keypoints, dtype=self.config.runtime.policy
    )
    if hasattr(net, "keypoint_spec"):  # The spec travels with the saved network (evaluate, predict, export).
      net.keypoint_spec = spec
    if hasattr(net, "method_config"):  # So does the method's configuration (the probe, the pictures).
      net.method_config = self.config.method.get_config()
    if self.config.runtime.synchronized_bn:
      distribute.set_synchronized_batch_norm(net)
    return net

  def build_model(self, spec: KeypointSpec, steps_per_epoch: int) -> SemiSupervisedPose:
    """The networks, the teacher-student model and its compiled optimizer (call inside the strategy's scope)."""
    cfg = self.config
    net = self.build_network(spec)
    if cfg.init_checkpoint:
      init_from(net, cfg.init_checkpoint)
    net2 = self.build_network(spec) if self.preset.dual else None
    frozen = None
    if self.preset.teacher == "frozen":
      if not cfg.pseudopose_teacher or not os.path.exists(cfg.pseudopose_teacher):
        raise FileNotFoundError(
          f"method 'pseudopose' needs train.pseudopose_teacher: a supervised checkpoint (.keras), e.g. "
          f"work_dirs/coco_1k_supervised/checkpoints/best.keras; got {cfg.pseudopose_teacher!r}"
        )
      frozen = load_network(cfg.pseudopose_teacher, "train.pseudopose_teacher")
    model = self.ssl_model_fn(net, cfg.method, net2=net2, frozen_teacher=frozen, seed=cfg.runtime.seed)
    opt = cfg.optimizer
    optimizer = keras.optimizers.Adam(
      MultiStepSchedule(opt.learning_rate, opt.lr_milestones, steps_per_epoch, opt.lr_factor)
    )
    if cfg.runtime.policy == "mixed_float16":
      optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    model.compile(
      optimizer=optimizer, jit_compile=cfg.runtime.jit_compile, steps_per_execution=cfg.runtime.steps_per_execution
    )
    return model

  def build(self) -> Experiment:
    """Data checks, seeds, strategy, inputs, then the model inside the strategy's scope."""
    cfg = self.config
    if cfg.runtime.deterministic:  # Op determinism and, on a CPU, Grappler off (determinism.py).
      determinism.enable()
    spec = get_spec(cfg.data.spec)
    self.check_inputs()
    # Before anything random is made: tf.data's seeded shuffles combine their seeds with TensorFlow's global
    # seed, and the initializers draw theirs from Python's generator, so both follow the run's seed whatever ran
    # before in the process (a second run in one process repeats the first).
    keras.utils.set_random_seed(cfg.runtime.seed)
    strategy = distribute.make_strategy(cfg.runtime.strategy)
    inputs = self.build_inputs(strategy.num_replicas_in_sync, strategy)
    with strategy.scope():
      model = self.build_model(spec, inputs["steps_per_epoch"])
    data = cfg.data
    return Experiment(
      model,
      strategy,
      spec=spec,
      work_dir=cfg.work_dir,
      data_dirs=(data.labeled_dir, data.unlabeled_dir, data.val_dir),
      **inputs,
    )

  # --- The run. --------------------------------------------------------------------------------------------------

  def run(
    self, extra_callbacks: Sequence[keras.callbacks.Callback] = (), operative_config: Callable[[], str] | None = None
  ) -> keras.callbacks.History:
    """Builds the task and fits it under the work directory's lock (a second run is refused), then writes the
    outputs. ``extra_callbacks``: the run's evaluators (they run before checkpointing); ``operative_config``: gin's
    operative bindings, written once the step has run."""
    exp = self.build()
    exp.extra_callbacks = list(extra_callbacks)
    chief = distribute.is_chief()
    work_dir = self.config.work_dir
    out_dir = work_dir if chief else os.path.join(work_dir, f"worker_{distribute.worker_index()}")
    with recovery.WorkDirLock(out_dir):
      history = self.fit(exp, out_dir, chief, operative_config)
    if chief:
      self.write_outputs(exp, operative_config)
    return history

  def build_callbacks(self, exp: Experiment, out_dir: str, chief: bool, operative_config=None) -> dict:
    """The run's callbacks in the order they must see an epoch end: backup, NaN guard, the evaluators, the
    monitor's check, then (chief only) checkpoints, TensorBoard, history.csv, pictures, the operative config, and
    last the backup's "epoch done"."""
    fit, work_dir = self.config.fit, self.config.work_dir
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
    extra = list(exp.extra_callbacks)
    callbacks = [backup, guard, *extra, cb.MonitorCheck(fit.checkpoint_monitor, extra, exp.val_data is not None)]
    checkpoint = None
    if chief:
      write_method_config(work_dir, exp.model.method_config)
      log_dir = os.path.join(work_dir, "logs")
      checkpoint = cb.PoseCheckpoint(
        exp.model.net, ckpt_dir, fit.checkpoint_monitor, fit.checkpoint_mode, fit.keep_every
      )
      callbacks += [
        checkpoint,
        keras.callbacks.TensorBoard(log_dir),
        cb.FiniteCSVLogger(os.path.join(work_dir, "history.csv"), append=True),
        cb.SemiSupervisedSummaries(log_dir, exp.probe, exp.spec, every_steps=fit.log_every_steps),
      ]
      if operative_config is not None:  # Gin knows the operative bindings once the step has run.
        callbacks.append(cb.WriteOnce(os.path.join(work_dir, "operative_config.gin"), operative_config))
    callbacks.append(recovery.EpochDone(backup))  # Last: an epoch is done once everything above has seen it.
    return {"callbacks": callbacks, "guard": guard, "backup": backup, "checkpoint": checkpoint}

  def fit(self, exp: Experiment, out_dir: str, chief: bool, operative_config=None) -> keras.callbacks.History:
    """``model.fit`` with the run's callbacks; a corrupt shard is named, a divergence says what was kept."""
    parts = self.build_callbacks(exp, out_dir, chief, operative_config)
    fit = self.config.fit
    try:
      history = exp.model.fit(
        exp.train_data,
        epochs=fit.epochs,
        steps_per_epoch=exp.steps_per_epoch,
        validation_data=exp.val_data,
        validation_steps=exp.val_steps,
        callbacks=parts["callbacks"],
        verbose=fit_verbosity(fit.verbose),  # A plain line per epoch when the output is a file.
        shuffle=False,  # tf.data shuffles.
      )
    except tf.errors.DataLossError:
      # TFRecord's message ("corrupted record at 1159245") names no file: find the shard, name it and its set.
      sets = list(exp.data_dirs) + [d for c in exp.extra_callbacks for d in getattr(c, "data_dirs", ())]
      error = records.corrupt_set_error(sets)
      if error is None:
        raise
      raise error from None
    guard, checkpoint, backup = parts["guard"], parts["checkpoint"], parts["backup"]
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
    return history

  def write_outputs(self, exp: Experiment, operative_config=None) -> None:
    """``final.keras``, the evaluators' results, the operative config, the SavedModel and the pictures."""
    fit = self.config.fit
    finish.write_outputs(
      exp.model.net,
      exp.spec,
      self.config.work_dir,
      exp.extra_callbacks,
      operative_config,
      fit.export,
      fit.picture_set,
      fit.picture_count,
    )


def init_from(net: keras.Model, path: str) -> None:
  """Copies every weight (backbone, head, batch-norm statistics) of a saved pose network into ``net``."""
  source = load_network(path, "train.init_checkpoint")
  theirs, ours = source.get_weights(), net.get_weights()
  shapes = [(a.shape, b.shape) for a, b in zip(theirs, ours)]
  if len(theirs) != len(ours) or any(a != b for a, b in shapes):
    raise ValueError(
      f"train.init_checkpoint {path} ({source.name}, {len(theirs)} arrays) does not match the "
      f"configured network {net.name} ({len(ours)} arrays)"
    )
  net.set_weights(theirs)


def write_method_config(work_dir: str, config: MethodConfig) -> str:
  """``<work_dir>/method_config.json``: the method and every setting of its step, as the run used them."""
  path = os.path.join(work_dir, METHOD_CONFIG_FILE)
  atomic.write_json(path, config.get_config())
  return path


def read_method_config(path: str) -> MethodConfig | None:
  """The method configuration of a trained network file or of a work directory, or None when there is none.

  A ``.keras`` network trained by this code carries it in its own configuration (read without loading the
  weights); for a work directory, or a network saved before networks carried it, the run's
  ``method_config.json`` in the folder itself or one or two folders up (``<work_dir>/checkpoints/final.keras``).
  """
  import json
  import zipfile

  if path.endswith(".keras") and os.path.isfile(path):
    try:
      with zipfile.ZipFile(path) as z:
        stored = json.loads(z.read("config.json")).get("config", {}).get("method_config")
    except (zipfile.BadZipFile, KeyError, ValueError):
      stored = None  # Not a Keras archive: load_network names the problem where the network is loaded.
    if stored:
      return MethodConfig.from_config(stored)
  folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
  for _ in range(3):
    candidate = os.path.join(folder, METHOD_CONFIG_FILE)
    if os.path.exists(candidate):
      with open(candidate) as f:
        return MethodConfig.from_config(json.load(f))
    folder = os.path.dirname(folder)
  return None


__all__ = [
  "DataConfig",
  "Experiment",
  "FitConfig",
  "METHOD_CONFIG_FILE",
  "OptimizerConfig",
  "PoseTask",
  "RuntimeConfig",
  "TaskConfig",
  "init_from",
  "read_method_config",
  "write_method_config",
]
