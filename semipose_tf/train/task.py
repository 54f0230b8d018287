"""One experiment as a task with named parts (TF Model Garden's Task): inputs, model, callbacks, fit.

A :class:`TaskConfig` is the whole run as a few frozen values (data, method, optimizer, runtime, fit), each
validated when made with a one-line error that names the ``train.*`` parameter. :class:`PoseTask` builds the parts
from it, in the order that keeps a seeded run repeatable (datasets before networks), and fits them. A warm-up is the
same task with a supervised method and a constant learning rate (:meth:`TaskConfig.warmup`), so both phases of a
run go through one path. :func:`semipose_tf.train.experiment.train` maps gin's flat ``train.*`` bindings onto it.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable

import keras
import tensorflow as tf

from semipose_tf import atomic
from semipose_tf.augment.affine import NONE, WEAK, AffineAugment
from semipose_tf.codec import DEFAULT_INPUT_SIZE, HeatmapCodec
from semipose_tf.data import pipeline, records
from semipose_tf.keypoints import KeypointSpec, get_spec
from semipose_tf.method_config import MethodConfig, check_number
from semipose_tf.models.factory import build_pose_model, load_network
from semipose_tf.train import determinism, distribute
from semipose_tf.train.methods import get_method
from semipose_tf.train.schedules import MultiStepSchedule
from semipose_tf.train.teacher_student import SemiSupervisedPose

METHOD_CONFIG_FILE = "method_config.json"
MIXED_PRECISION = (None, "float32", "mixed_float16", "mixed_bfloat16")


def _whole(name: str, value, low: int, allow_none: bool = False) -> None:
  if not (value is None and allow_none):
    check_number("train", name, value, low, integer=True)


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """The TFRecord sets (already under the data root) and how crops are made from them."""

  labeled_dir: str
  unlabeled_dir: str | None = None
  val_dir: str | None = None
  spec: str | KeypointSpec = "coco17"
  input_size: tuple[int, int] = DEFAULT_INPUT_SIZE
  labeled_batch_size: int = 32  # Per replica.
  unlabeled_batch_size: int = 32  # Per replica.
  augment: AffineAugment = WEAK
  subpixel_targets: bool = False
  conversion_hint: str = ""

  def __post_init__(self):
    object.__setattr__(self, "input_size", tuple(int(v) for v in self.input_size))
    _whole("labeled_batch_size", self.labeled_batch_size, 1)
    _whole("unlabeled_batch_size", self.unlabeled_batch_size, 1)


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
  """Adam with a step schedule: ``learning_rate`` x ``lr_factor`` at each milestone epoch."""

  learning_rate: float = 1e-3
  lr_milestones: tuple[int, ...] = (20, 25)
  lr_factor: float = 0.1

  def __post_init__(self):
    object.__setattr__(self, "lr_milestones", tuple(self.lr_milestones))
    lr = self.learning_rate
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
      raise ValueError(f"train.learning_rate must be a positive number, got {lr!r}")


@dataclasses.dataclass(frozen=True)
class RuntimeConfig:
  """Where and how the step runs."""

  strategy: str = "auto"
  mixed_precision: str | None = None
  jit_compile: bool = False
  synchronized_bn: bool = False
  seed: int = 0
  deterministic: bool = False
  steps_per_execution: int = 1

  def __post_init__(self):
    if self.mixed_precision not in MIXED_PRECISION:
      raise ValueError(
        f"train.mixed_precision must be None, 'float32', 'mixed_float16' or 'mixed_bfloat16', got "
        f"{self.mixed_precision!r}"
      )

  @property
  def policy(self) -> str | None:
    return None if self.mixed_precision in (None, "float32") else self.mixed_precision


@dataclasses.dataclass(frozen=True)
class FitConfig:
  """How long, what is kept and what is reported."""

  epochs: int = 30
  steps_per_epoch: int | None = None  # None: one pass over the unlabeled (or labeled) set.
  backup_every_steps: int | None = 500  # None: every epoch.
  checkpoint_monitor: str | None = "val_heatmap_loss"
  checkpoint_mode: str = "min"
  keep_every: int = 0
  log_every_steps: int = 100
  verbose: str | int = "auto"
  export: bool = False
  picture_set: str | None = None  # Already under the data root.
  picture_count: int = 6

  def __post_init__(self):
    _whole("epochs", self.epochs, 1)
    _whole("steps_per_epoch", self.steps_per_epoch, 1, allow_none=True)


@dataclasses.dataclass(frozen=True)
class TaskConfig:
  """A whole run. ``init_checkpoint``: a ``.keras`` network whose weights start it; ``pseudopose_teacher``: the
  frozen supervised network of "pseudopose"."""

  work_dir: str
  data: DataConfig
  method: MethodConfig = dataclasses.field(default_factory=MethodConfig)
  optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
  runtime: RuntimeConfig = dataclasses.field(default_factory=RuntimeConfig)
  fit: FitConfig = dataclasses.field(default_factory=FitConfig)
  init_checkpoint: str | None = None
  pseudopose_teacher: str | None = None

  def warmup(self, epochs: int) -> "TaskConfig":
    """The supervised warm-up phase of this run: ``<work_dir>/warmup``, constant learning rate, ``epochs``
    epochs, the same data, networks and seed."""
    return dataclasses.replace(
      self,
      work_dir=os.path.join(self.work_dir, "warmup"),
      method=dataclasses.replace(self.method, method="supervised"),
      optimizer=dataclasses.replace(self.optimizer, lr_milestones=()),
      fit=dataclasses.replace(self.fit, epochs=epochs, export=False, picture_set=None),
    )


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


def _check_set(path: str, what: str, hint: str) -> dict:
  """The set's manifest; a missing or incomplete set is an error naming it and how to convert it."""
  try:
    return records.read_manifest(path)
  except records.IncompleteSetError as e:
    raise FileNotFoundError(f"the {what} TFRecord set is missing or incomplete: {e}\n{hint}") from None


def _check_people(path: str, binding: str, batch: int, what: str) -> None:
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

  # --- The parts. ------------------------------------------------------------------------------------------------

  def check_inputs(self) -> None:
    """Every set the run reads exists and is complete (a clear error with the conversion command otherwise)."""
    data = self.config.data
    hint = data.conversion_hint or "Convert the data with: python scripts/make_tfrecords.py --help"
    manifest = _check_set(data.labeled_dir, "labeled", hint)
    labels = manifest.get("labels", "used")
    if labels == "removed from the records" or labels.startswith("none"):
      raise ValueError(
        f"train.labeled_dir {data.labeled_dir} holds no labels (its manifest: labels {labels}): it is an unlabeled "
        "set; convert a labeled one with make_tfrecords.py ... --sets labeled"
      )
    if int(manifest["num_instances"]) == 0:
      raise ValueError(f"train.labeled_dir {data.labeled_dir} holds no person")
    if self.preset.unlabeled:
      if data.unlabeled_dir is None:
        raise ValueError(f"method {self.preset.name!r} needs an unlabeled set: bind train.unlabeled_dir")
      _check_set(data.unlabeled_dir, "unlabeled", hint)
    if data.val_dir is not None:
      _check_set(data.val_dir, "validation", hint)

  def build_inputs(self, replicas: int, strategy: tf.distribute.Strategy) -> dict:
    """The training stream, the validation set, the pictures' probe batch (a function that makes it on first call:
    building its stream traces the augmentation once more), the steps per epoch."""
    data, seed = self.config.data, self.config.runtime.seed
    config = pipeline.PipelineConfig(self.codec, augment=data.augment, subpixel_targets=data.subpixel_targets)
    spec = get_spec(data.spec)
    gl, gu = data.labeled_batch_size * replicas, data.unlabeled_batch_size * replicas
    steps = self.config.fit.steps_per_epoch
    if steps is None:
      source, batch = (data.unlabeled_dir, gu) if data.unlabeled_dir else (data.labeled_dir, gl)
      steps = max(1, pipeline.steps_per_epoch(source, batch))
    oracle = self.preset.teacher == "labels"
    if self.preset.unlabeled:
      _check_people(data.unlabeled_dir, "train.unlabeled_dir", gu, "unlabeled people")
      stream = pipeline.semi_supervised_dataset(
        data.labeled_dir, data.unlabeled_dir, spec, gl, gu, config, seed=seed, repeat=True, unlabeled_targets=oracle
      )

      # The pictures' batch: what the step's teacher reads (with the ground truth for the "labels" teacher).
      def probe():
        probe_set = (
          pipeline.labeled_dataset(data.unlabeled_dir, spec, 4, config, seed=seed + 99)
          if oracle
          else pipeline.unlabeled_dataset(data.unlabeled_dir, None, 4, config, seed=seed + 99, repeat=True)
        )
        return next(iter(probe_set))
    else:
      stream = pipeline.labeled_dataset(data.labeled_dir, spec, gl, config, seed=seed).map(lambda ex: {"labeled": ex})
      probe = None
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
      options = tf.data.Options()
      options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
      stream = stream.with_options(options)
    val, val_steps = None, None
    if data.val_dir is not None:
      val = pipeline.labeled_dataset(
        data.val_dir,
        spec,
        gl,
        dataclasses.replace(config, augment=NONE),
        repeat=False,
        shuffle=False,
        drop_remainder=False,
      )
      val_steps = -(-pipeline.num_instances(data.val_dir) // gl)  # Every batch, so Keras never runs past the end.
    return {"train_data": stream, "val_data": val, "val_steps": val_steps, "probe": probe, "steps_per_epoch": steps}

  def build_network(self, spec: KeypointSpec) -> keras.Model:
    """One pose network of the run (call inside the strategy's scope)."""
    net = self.model_fn(
      input_size=self.codec.input_size, num_keypoints=spec.num_keypoints, dtype=self.config.runtime.policy
    )
    if hasattr(net, "keypoint_spec"):  # The spec travels with the saved network (evaluate, predict, export).
      net.keypoint_spec = spec
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
    if cfg.runtime.deterministic:  # Op determinism, and a warning if oneDNN's kernels are on (determinism.py).
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
  """The method configuration of the run a network file (or work directory) belongs to, or None when there is
  none: looks in the folder itself, then one and two folders up (``<work_dir>/checkpoints/final.keras``)."""
  import json

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
