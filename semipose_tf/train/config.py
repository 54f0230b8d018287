"""A run's configuration as typed values, the ones gin binds: each setting has one name, one default, one check.

A run is a :class:`TaskConfig` of five frozen parts, each validated when made with a one-line error that names the
binding (``DataConfig.labeled_batch_size must be ...``):

* :class:`DataConfig`: the TFRecord sets (relative to ``data_root``), the keypoint spec, input size, batch sizes,
  the weak augmentation;
* :class:`~semipose_tf.method_config.MethodConfig`: the method preset's name and every constant of its step;
* :class:`OptimizerConfig`: Adam and its step schedule;
* :class:`RuntimeConfig`: strategy, precision, seed, determinism;
* :class:`FitConfig`: length, checkpoints, logging and the final outputs.

Gin binds these classes by name (``DataConfig.labeled_batch_size = 16``, ``RuntimeConfig.seed = 2``,
``MethodConfig.method = "plus"``); ``gin_configs/base/train.gin`` hands one of each to ``train``. Without gin, make
them in Python and pass them to :func:`semipose_tf.train.experiment.train`. Work directories of the flat layout
that came before (``train.seed = 2``) are read through :func:`modern_binding`.
"""

from __future__ import annotations

import dataclasses
import os

from semipose_tf import method_config
from semipose_tf.augment.affine import WEAK, AffineAugment
from semipose_tf.codec import DEFAULT_INPUT_SIZE
from semipose_tf.data import records
from semipose_tf.keypoints import KeypointSpec
from semipose_tf.method_config import MethodConfig, check_number

MIXED_PRECISION = (None, "float32", "mixed_float16", "mixed_bfloat16")


def _whole(owner: str, name: str, value, low: int, allow_none: bool = False) -> None:
  if not (value is None and allow_none):
    check_number(owner, name, value, low, integer=True)


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """The TFRecord sets and how crops are made from them.

  Attributes:
    labeled_dir: The labeled set; like every path here, under ``data_root`` when relative.
    unlabeled_dir: The unlabeled set (the semi-supervised presets need one).
    val_dir: The validation set (the validation loss each epoch; evaluation callbacks name their own).
    data_root: The folder relative paths start from (``DATA_ROOT``; ``scripts/train.py --data_root``).
    spec: The keypoint spec's name (or a :class:`KeypointSpec`).
    input_size: (H, W) of the network input.
    labeled_batch_size: Labeled people per step and replica.
    unlabeled_batch_size: Unlabeled people per step and replica.
    augment: The weak / labeled augmentation.
    subpixel_targets: Centre target Gaussians at the exact joint position (the reference rounds it).
    conversion_hint: The command that makes the sets, printed when one is missing.
  """

  labeled_dir: str
  unlabeled_dir: str | None = None
  val_dir: str | None = None
  data_root: str | None = None
  spec: str | KeypointSpec = "coco17"
  input_size: tuple[int, int] = DEFAULT_INPUT_SIZE
  labeled_batch_size: int = 32
  unlabeled_batch_size: int = 32
  augment: AffineAugment = WEAK
  subpixel_targets: bool = False
  conversion_hint: str = ""

  def __post_init__(self):
    if not isinstance(self.labeled_dir, str) or not self.labeled_dir:
      raise ValueError(f"DataConfig.labeled_dir must name a labeled TFRecord set, got {self.labeled_dir!r}")
    object.__setattr__(self, "input_size", tuple(int(v) for v in self.input_size))
    _whole("DataConfig", "labeled_batch_size", self.labeled_batch_size, 1)
    _whole("DataConfig", "unlabeled_batch_size", self.unlabeled_batch_size, 1)

  def under_root(self, path: str | None) -> str | None:
    """``path`` under ``data_root`` when relative (the one rule of every data path of a run)."""
    return records.under_root(self.data_root, path)

  def resolved(self) -> "DataConfig":
    """The same sets with their paths under the data root, and no root left to apply."""
    under = self.under_root
    return dataclasses.replace(
      self,
      labeled_dir=under(self.labeled_dir),
      unlabeled_dir=under(self.unlabeled_dir),
      val_dir=under(self.val_dir),
      data_root=None,
    )


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
      raise ValueError(f"OptimizerConfig.learning_rate must be a positive number, got {lr!r}")


@dataclasses.dataclass(frozen=True)
class RuntimeConfig:
  """Where and how the step runs.

  Attributes:
    strategy: "auto", "one", "mirrored" or "multi_worker" (TF_CONFIG).
    mixed_precision: None, "mixed_float16" (loss scaling) or "mixed_bfloat16".
    jit_compile: XLA for the step.
    synchronized_bn: Batch-norm statistics over all replicas.
    seed: Every random draw of the run (data order, augmentation, initializers, the step's draws).
    deterministic: TensorFlow's op determinism: with the seed, a run repeats exactly on one machine.
    steps_per_execution: Steps per ``tf.function`` call.
  """

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
        f"RuntimeConfig.mixed_precision must be None, 'float32', 'mixed_float16' or 'mixed_bfloat16', got "
        f"{self.mixed_precision!r}"
      )

  @property
  def policy(self) -> str | None:
    return None if self.mixed_precision in (None, "float32") else self.mixed_precision


@dataclasses.dataclass(frozen=True)
class FitConfig:
  """How long, what is kept and what is reported.

  Attributes:
    epochs: Epochs of the run (of the method's phase when there is a warm-up).
    steps_per_epoch: None: one pass over the unlabeled (or labeled) set.
    backup_every_steps: Steps between crash-safe backups; None: every epoch.
    checkpoint_monitor: The logged metric ``best.keras`` follows ("val_AP" with a COCO evaluation callback).
    checkpoint_mode: "min" or "max".
    keep_every: Also keep ``epoch_NNN.keras`` every that many epochs (0: never).
    log_every_steps: TensorBoard scalars every that many steps.
    verbose: Keras' progress output ("auto": a bar on a terminal, a line per epoch in a file).
    export: The final network as a SavedModel in ``<work_dir>/saved_model/1``.
    picture_set: A set (under the data root) whose first images get the final network's predictions drawn.
    picture_count: How many images of it.
  """

  epochs: int = 30
  steps_per_epoch: int | None = None
  backup_every_steps: int | None = 500
  checkpoint_monitor: str | None = "val_heatmap_loss"
  checkpoint_mode: str = "min"
  keep_every: int = 0
  log_every_steps: int = 100
  verbose: str | int = "auto"
  export: bool = False
  picture_set: str | None = None
  picture_count: int = 6

  def __post_init__(self):
    _whole("FitConfig", "epochs", self.epochs, 1)
    _whole("FitConfig", "steps_per_epoch", self.steps_per_epoch, 1, allow_none=True)


@dataclasses.dataclass(frozen=True)
class TaskConfig:
  """A whole run. ``init_checkpoint``: a ``.keras`` network whose weights start it; ``pseudopose_teacher``: the
  frozen supervised network of "pseudopose". Paths are as given; :meth:`resolved` puts them under the data root."""

  work_dir: str
  data: DataConfig
  method: MethodConfig = dataclasses.field(default_factory=MethodConfig)
  optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
  runtime: RuntimeConfig = dataclasses.field(default_factory=RuntimeConfig)
  fit: FitConfig = dataclasses.field(default_factory=FitConfig)
  init_checkpoint: str | None = None
  pseudopose_teacher: str | None = None

  def __post_init__(self):
    for name, cls in (("data", DataConfig), ("method", MethodConfig), ("optimizer", OptimizerConfig),
                      ("runtime", RuntimeConfig), ("fit", FitConfig)):  # fmt: skip
      if not isinstance(getattr(self, name), cls):
        raise ValueError(f"train.{name} must be a {cls.__name__} (gin: train.{name} = @{cls.__name__}()), got "
                         f"{getattr(self, name)!r}")  # fmt: skip

  def resolved(self) -> "TaskConfig":
    """Every data path (the sets, the pictures' set) under the data root, once."""
    return dataclasses.replace(
      self,
      data=self.data.resolved(),
      fit=dataclasses.replace(self.fit, picture_set=self.data.under_root(self.fit.picture_set)),
    )

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


# --- The flat names of work directories written before the typed configuration. -----------------------------

_PARTS = {"DataConfig": DataConfig, "OptimizerConfig": OptimizerConfig, "RuntimeConfig": RuntimeConfig,
          "FitConfig": FitConfig}  # fmt: skip
LEGACY = {
  **{f"train.{f.name}": f"{owner}.{f.name}" for owner, cls in _PARTS.items() for f in dataclasses.fields(cls)},
  "train.method_config": "train.method",  # The MethodConfig itself.
  "train.data_root": "DataConfig.data_root",
}


def modern_binding(key: str, value: str = "") -> str:
  """The binding's name in the typed configuration: ``train.seed`` -> ``RuntimeConfig.seed``; ``train.method``
  bound to a name (``"plus"``) -> ``MethodConfig.method``. Other names are returned as they are."""
  if key == "train.method" and not value.lstrip().startswith("@"):
    return "MethodConfig.method"
  return LEGACY.get(key, key)


def default_text(key: str) -> str | None:
  """The default of a typed binding (``RuntimeConfig.seed`` -> ``"0"``) as gin writes it, or None when the name
  is not one of the configuration's own fields."""
  owner, _, name = key.partition(".")
  parts = {c.__name__: c for c in (MethodConfig, method_config.Masking, method_config.StrongView,
                                    method_config.Mixup, method_config.LossWeights)}  # fmt: skip
  cls = {**_PARTS, **parts}.get(owner)
  fields = {f.name: f for f in dataclasses.fields(cls)} if cls else {}
  if name not in fields or fields[name].default is dataclasses.MISSING:
    return None
  return repr(fields[name].default)


__all__ = [
  "LEGACY",
  "DataConfig",
  "FitConfig",
  "OptimizerConfig",
  "RuntimeConfig",
  "TaskConfig",
  "default_text",
  "modern_binding",
]
