"""One training run: datasets, strategy, networks, optimizer, callbacks, ``fit``. Gin binds :func:`train`.

Work directory layout::

  <work_dir>/config.gin             the gin config as parsed (written at start)
  <work_dir>/operative_config.gin   the bindings actually used (written once training starts and at the end)
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

import dataclasses
import inspect
import os
import shutil
from typing import Callable, Sequence

import keras
import tensorflow as tf

from semipose_tf.augment.affine import NONE, WEAK
from semipose_tf.data import pipeline, records
from semipose_tf.keypoints import KeypointSpec, get_spec
from semipose_tf.models.factory import build_pose_model, load_network
from semipose_tf.train import callbacks as cb
from semipose_tf.train import distribute, finish, recovery
from semipose_tf.train.methods import get_method
from semipose_tf.train.schedules import MultiStepSchedule
from semipose_tf.train.teacher_student import SemiSupervisedPose


class TrainingDiverged(RuntimeError):
  """The loss became NaN or infinite."""


@dataclasses.dataclass
class Experiment:
  """What :func:`build_experiment` assembles; :func:`train` fits it."""

  model: SemiSupervisedPose
  strategy: tf.distribute.Strategy
  train_data: tf.data.Dataset
  val_data: tf.data.Dataset | None
  val_steps: int | None
  probe: dict | None
  steps_per_epoch: int
  spec: KeypointSpec
  work_dir: str
  extra_callbacks: list = dataclasses.field(default_factory=list)
  data_dirs: tuple = ()  # The TFRecord sets it reads (labeled, unlabeled, validation).


def _resolve(root: str | None, path: str | None) -> str | None:
  if path is None:
    return None
  return path if (root is None or os.path.isabs(path)) else os.path.join(root, path)


def _check_set(path: str, what: str, hint: str) -> None:
  try:
    records.read_manifest(path)
  except records.IncompleteSetError as e:
    raise FileNotFoundError(f"the {what} TFRecord set is missing or incomplete: {e}\n{hint}") from None


def build_experiment(work_dir: str, labeled_dir: str, unlabeled_dir: str | None = None, val_dir: str | None = None,
                     data_root: str | None = None, conversion_hint: str = "", spec: str = "coco17",
                     method: str = "plus", input_size: Sequence[int] = (256, 192),
                     labeled_batch_size: int = 32, unlabeled_batch_size: int = 32,
                     learning_rate: float = 1e-3, lr_milestones: Sequence[int] = (20, 25), lr_factor: float = 0.1,
                     strategy: str = "auto", mixed_precision: str | None = None, jit_compile: bool = False,
                     synchronized_bn: bool = False, seed: int = 0, steps_per_epoch: int | None = None,
                     pseudopose_teacher: str | None = None, init_checkpoint: str | None = None,
                     steps_per_execution: int = 1,
                     model_fn: Callable[..., keras.Model] = build_pose_model,
                     ssl_model_fn: Callable[..., SemiSupervisedPose] = SemiSupervisedPose,
                     augment=WEAK, subpixel_targets: bool = False, deterministic: bool = False) -> Experiment:
  """Builds datasets and models inside the strategy's scope (see :func:`train` for the arguments)."""
  if deterministic:
    # Seeds alone fix every random draw here (stateless step seeds, seeded tf.data, per-layer initializers);
    # op determinism also fixes the order of parallel reductions (GPU kernels, multi-threaded CPU ones), so a run
    # repeats bit for bit on the same machine. Process-wide, as TensorFlow makes it.
    tf.config.experimental.enable_op_determinism()
  the_method = get_method(method)
  spec = get_spec(spec)
  if mixed_precision not in (None, "float32", "mixed_float16", "mixed_bfloat16"):
    raise ValueError(f"mixed_precision must be None, 'float32', 'mixed_float16' or 'mixed_bfloat16', got "
                     f"{mixed_precision!r}")
  labeled_dir = _resolve(data_root, labeled_dir)
  unlabeled_dir = _resolve(data_root, unlabeled_dir)
  val_dir = _resolve(data_root, val_dir)
  hint = conversion_hint or "Convert the data with: python scripts/make_tfrecords.py --help"
  _check_set(labeled_dir, "labeled", hint)
  if the_method.unlabeled:
    if unlabeled_dir is None:
      raise ValueError(f"method {method!r} needs an unlabeled set: bind train.unlabeled_dir")
    _check_set(unlabeled_dir, "unlabeled", hint)
  if val_dir is not None:
    _check_set(val_dir, "validation", hint)
  # Before anything random is made: tf.data's seeded shuffles combine their seeds with TensorFlow's global seed,
  # and the initializers draw theirs from Python's generator, so both follow the run's seed whatever ran before
  # in the process (a second run in one process repeats the first).
  keras.utils.set_random_seed(seed)
  strat = distribute.make_strategy(strategy)
  replicas = strat.num_replicas_in_sync
  config = pipeline.PipelineConfig(input_size=tuple(input_size), augment=augment, subpixel_targets=subpixel_targets)
  gl, gu = labeled_batch_size * replicas, unlabeled_batch_size * replicas
  if steps_per_epoch is None:
    source, batch = (unlabeled_dir, gu) if unlabeled_dir else (labeled_dir, gl)
    steps_per_epoch = max(1, pipeline.steps_per_epoch(source, batch))
  if the_method.unlabeled:
    data = pipeline.semi_supervised_dataset(labeled_dir, unlabeled_dir, spec, gl, gu, config, seed=seed,
                                            repeat=True, unlabeled_targets=the_method.teacher == "labels")
    probe = next(iter(pipeline.unlabeled_dataset(unlabeled_dir, None, 4, config, seed=seed + 99)))
  else:
    data = pipeline.labeled_dataset(labeled_dir, spec, gl, config, seed=seed).map(lambda ex: {"labeled": ex})
    probe = None
  if isinstance(strat, tf.distribute.MultiWorkerMirroredStrategy):
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    data = data.with_options(options)
  val, val_steps = None, None
  if val_dir is not None:
    val = pipeline.labeled_dataset(val_dir, spec, gl, dataclasses.replace(config, augment=NONE), repeat=False,
                                   shuffle=False, drop_remainder=False)
    val_steps = -(-pipeline.num_instances(val_dir) // gl)  # Every batch, so that Keras never runs past the end.
  policy = None if mixed_precision in (None, "float32") else mixed_precision
  with strat.scope():
    def make_net():
      net = model_fn(input_size=tuple(input_size), num_keypoints=spec.num_keypoints, dtype=policy)
      if hasattr(net, "keypoint_spec"):  # The spec travels with the saved network (evaluate, predict, export).
        net.keypoint_spec = spec
      if synchronized_bn:
        distribute.set_synchronized_batch_norm(net)
      return net

    net = make_net()
    if init_checkpoint:
      _init_from(net, init_checkpoint)
    net2 = make_net() if the_method.dual else None
    frozen = None
    if the_method.teacher == "frozen":
      if not pseudopose_teacher or not os.path.exists(pseudopose_teacher):
        raise FileNotFoundError(
            f"method 'pseudopose' needs train.pseudopose_teacher: a supervised checkpoint (.keras), e.g. "
            f"work_dirs/coco_1k_supervised/checkpoints/best.keras; got {pseudopose_teacher!r}")
      frozen = load_network(pseudopose_teacher, "train.pseudopose_teacher")
    model = ssl_model_fn(net, method=method, net2=net2, frozen_teacher=frozen, seed=seed)
    schedule = MultiStepSchedule(learning_rate, lr_milestones, steps_per_epoch, lr_factor)
    optimizer = keras.optimizers.Adam(schedule)
    if policy == "mixed_float16":
      optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    model.compile(optimizer=optimizer, jit_compile=jit_compile, steps_per_execution=steps_per_execution)
  return Experiment(model, strat, data, val, val_steps, probe, steps_per_epoch, spec, work_dir,
                    data_dirs=(labeled_dir, unlabeled_dir, val_dir))


def _init_from(net: keras.Model, path: str) -> None:
  """Copies every weight (backbone, head, batch-norm statistics) of a saved pose network into ``net``."""
  source = load_network(path, "train.init_checkpoint")
  theirs, ours = source.get_weights(), net.get_weights()
  shapes = [(a.shape, b.shape) for a, b in zip(theirs, ours)]
  if len(theirs) != len(ours) or any(a != b for a, b in shapes):
    raise ValueError(f"train.init_checkpoint {path} ({source.name}, {len(theirs)} arrays) does not match the "
                     f"configured network {net.name} ({len(ours)} arrays)")
  net.set_weights(theirs)


def train(work_dir: str, labeled_dir: str, epochs: int = 30, backup_every_steps: int | None = 500,
          checkpoint_monitor: str | None = "val_heatmap_loss", checkpoint_mode: str = "min", keep_every: int = 0,
          log_every_steps: int = 100, extra_callbacks: Sequence[keras.callbacks.Callback] = (),
          verbose: str | int = "auto", dry_run: bool = False, operative_config: Callable[[], str] | None = None,
          prepare_data: Callable[[], object] | None = None, export: bool = False,
          picture_set: str | None = None, picture_count: int = 6, warmup_epochs: int = 0,
          **kwargs) -> keras.callbacks.History | Experiment:
  """Trains a pose network with a method of the paper; a killed run started again resumes.

  Args:
    work_dir: Output directory (checkpoints, backups, TensorBoard logs, configs).
    labeled_dir: Labeled TFRecord set (relative to ``data_root`` when that is set).
    epochs: Epochs; one epoch is one pass over the unlabeled set (the labeled set repeats).
    backup_every_steps: BackupAndRestore frequency in steps (None: every epoch).
    checkpoint_monitor: Log key whose best value keeps ``best.keras`` ("val_AP" with a COCO evaluation callback).
    checkpoint_mode: "min" or "max" for the monitor.
    keep_every: Also keep ``epoch_NNN.keras`` every that many epochs (0: never).
    log_every_steps: TensorBoard scalar frequency.
    extra_callbacks: More callbacks (e.g. an evaluation callback); they run before checkpointing.
    verbose: Keras ``fit`` verbosity ("auto": a progress bar).
    dry_run: Build everything and return the :class:`Experiment` without training.
    operative_config: A function returning the operative config text to save (gin's, from the script).
    prepare_data: Called first, to make the data if it is missing (the demo binds the synthetic generator,
      :func:`semipose_tf.synthetic.generate.prepare`).
    export: At the end, export the final network as a SavedModel to ``<work_dir>/saved_model/1``.
    picture_set: At the end, draw the predictions of the final network (through the SavedModel when exported)
      on the first ``picture_count`` images of this TFRecord set (relative to ``data_root``) into
      ``<work_dir>/predictions.png``.
    picture_count: Images in that picture.
    warmup_epochs: Beyond the paper, off (0) in the paper's experiment files: first train the network supervised
      (labeled data only, constant learning rate) for that many epochs into ``<work_dir>/warmup``, then start the
      method from it for ``epochs`` more; the unlabeled branches switch on only once the teacher has learned
      something. A finished warm-up is reused, so a killed run resumes in either phase.
    **kwargs: :func:`build_experiment` arguments: unlabeled_dir, val_dir, data_root, conversion_hint, spec,
      method, input_size, labeled_batch_size / unlabeled_batch_size (per replica), learning_rate,
      lr_milestones, lr_factor, strategy ("auto", "one", "mirrored", "multi_worker"), mixed_precision (None,
      "mixed_float16", "mixed_bfloat16"), jit_compile, synchronized_bn, seed, steps_per_epoch,
      pseudopose_teacher, init_checkpoint (a .keras network of the same architecture whose weights start the run,
      e.g. a supervised burn-in), steps_per_execution, model_fn, ssl_model_fn, augment, subpixel_targets (centre
      the target Gaussians at the exact joint position; the reference rounds it to a heatmap pixel),
      deterministic (TensorFlow op determinism: a seeded run repeats bit for bit on one machine).

  Returns:
    The Keras History (or the Experiment with ``dry_run``).

  Raises:
    FileNotFoundError: a TFRecord set is missing; the message gives the conversion command.
    TrainingDiverged: the loss became NaN / infinite.
  """
  _check_counts(epochs=epochs, warmup_epochs=warmup_epochs, **{k: kwargs[k] for k in (
      "labeled_batch_size", "unlabeled_batch_size", "steps_per_epoch", "learning_rate") if k in kwargs})
  accepted = set(inspect.signature(build_experiment).parameters)
  unknown = sorted(set(kwargs) - accepted)
  if unknown:
    known = sorted((accepted | set(inspect.signature(train).parameters)) - {"kwargs", "work_dir"})
    raise ValueError(f"unknown parameter train.{unknown[0]}" + (f" (and {unknown[1:]})" if unknown[1:] else "") +
                     f"; train takes: {', '.join(known)}")
  if prepare_data is not None:
    prepare_data()
  if warmup_epochs and not dry_run and get_method(kwargs.get("method", "plus")).unlabeled:
    kwargs["init_checkpoint"] = _warm_up(work_dir, labeled_dir, warmup_epochs, backup_every_steps,
                                         checkpoint_monitor, checkpoint_mode, log_every_steps, extra_callbacks,
                                         verbose, kwargs)
  exp = build_experiment(work_dir, labeled_dir, **kwargs)
  exp.extra_callbacks = list(extra_callbacks)
  if dry_run:
    return exp
  chief = distribute.is_chief()
  out_dir = work_dir if chief else os.path.join(work_dir, f"worker_{distribute.worker_index()}")
  with recovery.WorkDirLock(out_dir):  # A second run on this work dir is refused, naming this one's pid.
    return _fit(exp, work_dir, out_dir, chief, epochs, backup_every_steps, checkpoint_monitor, checkpoint_mode,
                keep_every, log_every_steps, extra_callbacks, verbose, operative_config, export,
                _resolve(kwargs.get("data_root"), picture_set), picture_count)


def _check_counts(**values) -> None:
  """Settings that must be positive (warmup_epochs may be 0; steps_per_epoch None means one pass of the data)."""
  for name, value in values.items():
    if value is None and name == "steps_per_epoch":
      continue
    floor = 0 if name == "warmup_epochs" else 1e-300 if name == "learning_rate" else 1
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < floor or (
        name != "learning_rate" and value != int(value)):
      want = "a positive number" if name == "learning_rate" else (
          "a whole number >= 0" if name == "warmup_epochs" else "a whole number >= 1")
      raise ValueError(f"train.{name} must be {want}, got {value!r}")


def _warm_up(work_dir: str, labeled_dir: str, epochs: int, backup_every_steps, monitor, mode, log_every_steps,
             extra_callbacks, verbose, kwargs: dict) -> str:
  """The supervised warm-up of :func:`train` (``warmup_epochs``); returns its final network's path."""
  warm = os.path.join(work_dir, "warmup")
  final = os.path.join(warm, "checkpoints", "final.keras")
  if not os.path.exists(final):
    print(f"Supervised warm-up: {epochs} epochs on the labeled data before the unlabeled branches switch on "
          f"({warm})")
    train(warm, labeled_dir, epochs=epochs, backup_every_steps=backup_every_steps, checkpoint_monitor=monitor,
          checkpoint_mode=mode, log_every_steps=log_every_steps, extra_callbacks=extra_callbacks, verbose=verbose,
          **{**kwargs, "method": "supervised", "lr_milestones": ()})
  for c in extra_callbacks:  # The untrained network was measured before the warm-up; not again after it.
    if getattr(c, "at_start", False):
      c.at_start = False
  before = os.path.join(warm, "before_training.json")
  if os.path.exists(before) and not os.path.exists(os.path.join(work_dir, "before_training.json")):
    os.makedirs(work_dir, exist_ok=True)
    shutil.copyfile(before, os.path.join(work_dir, "before_training.json"))
  print(f"Warm-up done; the {kwargs.get('method', 'plus')} method starts from {final}")
  return final


def _fit(exp: Experiment, work_dir: str, out_dir: str, chief: bool, epochs: int, backup_every_steps, monitor,
         mode, keep_every, log_every_steps, extra_callbacks, verbose, operative_config, export, picture_set,
         picture_count) -> keras.callbacks.History:
  """Fits with the callbacks of a run and writes its final outputs (see :func:`train`)."""
  ckpt_dir = os.path.join(work_dir, "checkpoints")
  restart = (f"Start again from the last checkpoint: remove {os.path.join(out_dir, 'backup')} and train with "
             f"train.init_checkpoint = '{os.path.join(ckpt_dir, 'last.keras')}' (weights only; the optimizer and "
             "the schedule start over), or remove the work directory to start from scratch.")
  guard = cb.NaNGuard()
  backup = recovery.Backup(os.path.join(out_dir, "backup"), save_freq=backup_every_steps or "epoch",
                           restart_hint=restart)
  callbacks = [backup, guard, *extra_callbacks]
  checkpoint = None
  if chief:
    log_dir = os.path.join(work_dir, "logs")
    checkpoint = cb.PoseCheckpoint(exp.model.net, ckpt_dir, monitor, mode, keep_every)
    callbacks += [checkpoint, keras.callbacks.TensorBoard(log_dir),
                  cb.FiniteCSVLogger(os.path.join(work_dir, "history.csv"), append=True),
                  cb.SemiSupervisedSummaries(log_dir, exp.probe, exp.spec, every_steps=log_every_steps)]
    if operative_config is not None:  # Gin knows the operative bindings once the step has run.
      callbacks.append(cb.WriteOnce(os.path.join(work_dir, "operative_config.gin"), operative_config))
  callbacks.append(recovery.EpochDone(backup))  # Last: an epoch is done once everything above has seen it.

  try:
    history = exp.model.fit(exp.train_data, epochs=epochs, steps_per_epoch=exp.steps_per_epoch,
                            validation_data=exp.val_data, validation_steps=exp.val_steps,
                            callbacks=callbacks, verbose=verbose, shuffle=False)  # tf.data shuffles.
  except tf.errors.DataLossError:
    # TFRecord's message ("corrupted record at 1159245") names no file: find the shard, name it and its set.
    sets = list(exp.data_dirs) + [d for c in extra_callbacks for d in getattr(c, "data_dirs", ())]
    error = records.corrupt_set_error(sets)
    if error is None:
      raise
    raise error from None
  if guard.message:
    good = checkpoint.last_good if checkpoint else None
    raise TrainingDiverged(guard.message + (f" Nothing non-finite was saved: the last good checkpoint is {good}."
                                            if good else " Nothing non-finite was saved (no checkpoint yet).") +
                           (" The backup holds the last finite state, so the same command resumes from there."
                            if backup.has_generation else
                            " No backup was written before it diverged: the same command starts over."))
  if chief:
    finish.write_outputs(exp.model.net, exp.spec, work_dir, extra_callbacks, operative_config, export, picture_set,
                         picture_count)
  return history
