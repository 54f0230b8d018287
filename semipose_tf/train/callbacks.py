"""Training callbacks: pose-network checkpoints, a NaN guard with a clear message, TensorBoard extras."""

from __future__ import annotations

import json
import math
import os
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from semipose_tf import atomic, codec, visualize
from semipose_tf.augment import mixup
from semipose_tf.data import ops
from semipose_tf.keypoints import KeypointSpec
from semipose_tf.train.recovery import NonFiniteWeights, check_finite


def save_model_atomic(model: keras.Model, path: str) -> None:
  """Saves a ``.keras`` file under a temporary name, then renames it: a kill never leaves a torn checkpoint.

  Raises:
    NonFiniteWeights: the weights hold NaN or infinity (nothing is written).
  """
  check_finite(model, path)
  try:
    atomic.write_with(path, model.save, suffix=".keras")  # Keras picks the format from the suffix.
  except OSError as e:  # A full disk: name the checkpoint (Keras's zip writer's error names no file).
    raise OSError(
      e.errno, f"cannot write the checkpoint ({e.strerror or e}); the previous one is whole", path
    ) from None


class WriteOnce(keras.callbacks.Callback):
  """Writes ``text_fn()`` to ``path`` after the first training step (e.g. gin's operative config)."""

  def __init__(self, path: str, text_fn):
    super().__init__()
    self.path, self.text_fn, self.done = path, text_fn, False

  def on_train_batch_end(self, batch, logs=None):
    if not self.done:
      self.done = True
      atomic.write_text(self.path, self.text_fn())


class PoseCheckpoint(keras.callbacks.Callback):
  """Saves the pose network (not the teacher-student wrapper) as ``.keras`` files, finite weights only.

  ``last.keras`` every epoch, ``epoch_NNN.keras`` every ``keep_every`` epochs (0: never), and ``best.keras`` when
  ``monitor`` (e.g. "val_AP" or "val_heatmap_loss") improves. The best value and its epoch are kept in
  ``best.json`` beside it, so a resumed run compares with them instead of starting over. Weights that are not
  finite are never written: the epoch's checkpoints are skipped, training stops, and ``last_good`` says which
  checkpoint holds the last finite network.
  """

  def __init__(
    self, net: keras.Model, directory: str, monitor: str | None = None, mode: str = "max", keep_every: int = 0
  ):
    super().__init__()
    if mode not in ("max", "min"):
      raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
    self.net, self.directory, self.monitor, self.mode, self.keep_every = net, directory, monitor, mode, keep_every
    self.best = -math.inf if mode == "max" else math.inf
    self.best_epoch: int | None = None
    self.last_good: str | None = None
    self._best_file = os.path.join(directory, "best.json")
    if os.path.exists(self._best_file):
      try:
        with open(self._best_file) as f:
          saved = json.load(f)
      except (OSError, ValueError):
        saved = {}
      if saved.get("monitor") == monitor and saved.get("mode") == mode:
        self.best, self.best_epoch = float(saved["value"]), int(saved["epoch"])
    if os.path.exists(os.path.join(directory, "last.keras")):
      self.last_good = os.path.join(directory, "last.keras")

  def on_epoch_end(self, epoch, logs=None):
    logs = logs or {}
    try:
      save_model_atomic(self.net, os.path.join(self.directory, "last.keras"))  # Refuses non-finite weights.
    except NonFiniteWeights as e:
      where = f"; the last good checkpoint is {self.last_good}" if self.last_good else "; no checkpoint was written"
      print(f"\nepoch {epoch + 1}: {e}{where}")
      self.model.stop_training = True
      return
    self.last_good = os.path.join(self.directory, "last.keras")
    if self.keep_every and (epoch + 1) % self.keep_every == 0:
      save_model_atomic(self.net, os.path.join(self.directory, f"epoch_{epoch + 1:03d}.keras"))
    if self.monitor and self.monitor in logs:
      value = float(logs[self.monitor])
      if np.isfinite(value) and ((value > self.best) if self.mode == "max" else (value < self.best)):
        self.best, self.best_epoch = value, epoch + 1
        save_model_atomic(self.net, os.path.join(self.directory, "best.keras"))
        atomic.write_json(
          self._best_file, {"monitor": self.monitor, "mode": self.mode, "value": value, "epoch": epoch + 1}
        )


def nonfinite_losses(logs: dict | None) -> dict[str, float]:
  """The losses of a Keras logs dict that are NaN or infinite (``loss*`` and ``total_loss``)."""
  return {
    k: float(v)
    for k, v in (logs or {}).items()
    if (k.startswith("loss") or k == "total_loss") and not np.isfinite(float(v))
  }


class FiniteCSVLogger(keras.callbacks.CSVLogger):
  """CSVLogger that leaves out an epoch whose losses are not finite (a diverged epoch: it is trained again after
  the resume, so its row would be a NaN and a duplicate), and whose rows agree with the backup on a resume.

  The backup is the record of which epochs are done (``recovery.EpochDone``, the last callback): a kill after an
  epoch's row was written but before the backup recorded the epoch trains that epoch again. So at the start of a
  resumed run (``model._initial_epoch``, which the backup, an earlier callback, has set) the rows of that epoch and
  later ones are removed, written aside and renamed into place: every epoch has exactly one row.
  """

  def on_train_begin(self, logs=None):
    first = int(getattr(self.model, "_initial_epoch", 0) or 0)
    if self.append and os.path.exists(self.filename):
      with open(self.filename, newline="") as f:
        lines = f.readlines()
      kept = lines[:1] + [line for line in lines[1:] if _row_epoch(line) < first]
      if len(kept) != len(lines):
        atomic.write_text(self.filename, "".join(kept))
    super().on_train_begin(logs)

  def on_epoch_end(self, epoch, logs=None):
    if not nonfinite_losses(logs):
      super().on_epoch_end(epoch, logs)


def _row_epoch(line: str) -> int:
  """The epoch of a history.csv row (its first column); a row that is not one counts as after every epoch."""
  try:
    return int(line.split(",", 1)[0])
  except ValueError:
    return 1 << 30


# What the training step logs besides its trackers (teacher_student.SemiSupervisedPose._measure).
STEP_EXTRAS = ("mix_lambda", "mix_location", "lr")


class MonitorCheck(keras.callbacks.Callback):
  """Refuses, when training begins, a checkpoint monitor that nothing of the run logs (``val_APP``: before, the run
  trained to the end and never wrote ``best.keras``).

  Place it after the evaluation callbacks (their evaluators, which say what they log, are made when training
  begins). What is known to be logged: the step's trackers and extras, ``val_heatmap_loss`` with validation data,
  and the ``names`` of each given callback. A callback without ``names`` (a user's own) might log anything, so then
  nothing is refused.
  """

  def __init__(self, monitor: str | None, others: list, validation: bool):
    super().__init__()
    self.monitor, self.others, self.validation = monitor, others, validation

  def on_train_begin(self, logs=None):
    if not self.monitor:
      return
    names = [getattr(c, "names", None) for c in self.others]
    if any(n is None for n in names):
      return
    step = [m.name for m in self.model.metrics if m.name != "heatmap_loss"] + list(STEP_EXTRAS)
    logged = set(step) | {n for group in names for n in group}
    if self.validation:
      logged.add("val_heatmap_loss")
    if self.monitor not in logged:
      raise ValueError(
        f"FitConfig.checkpoint_monitor = {self.monitor!r} is not a value this run logs, so best.keras would never be "
        f"written; it logs: {', '.join(sorted(logged))}"
      )


class NaNGuard(keras.callbacks.Callback):
  """Stops training at the first non-finite loss and keeps a message saying where and what to try."""

  def __init__(self):
    super().__init__()
    self.message: str | None = None
    self._epoch = 0

  def on_epoch_begin(self, epoch, logs=None):
    self._epoch = epoch

  def on_train_batch_end(self, batch, logs=None):
    bad = nonfinite_losses(logs)
    if bad:
      self.message = (
        f"training diverged: non-finite loss at epoch {self._epoch + 1}, step {batch + 1} ({bad}). "
        "Try a lower learning rate (OptimizerConfig.learning_rate), float32 or mixed_bfloat16 instead of "
        "mixed_float16, or check the input data (python scripts/make_tfrecords.py --skip_bad)."
      )
      print(f"\n{self.message}")
      self.model.stop_training = True


class SemiSupervisedSummaries(keras.callbacks.Callback):
  """TensorBoard extras (``<log_dir>/ssl``): every ``every_steps`` steps the step's measurements (losses, learning
  rate, mask count, mixing lambda and location); each epoch the mask-count histogram of the epoch and pictures of a
  fixed unlabeled batch (weak view with the teacher's keypoints | masked strong view with its targets' keypoints |
  mixed view). Keras's TensorBoard callback adds the per-epoch scalars."""

  def __init__(
    self,
    log_dir: str,
    probe: dict | Callable[[], dict] | None,
    spec: KeypointSpec,
    num_images: int = 4,
    every_steps: int = 100,
  ):
    """Args: probe: the pictures' batch (``"image"`` [N, H, W, 3], and the ground truth for the "labels" teacher),
    or a function that makes it, called at the first epoch end that draws pictures; None draws none."""
    super().__init__()
    self.writer = tf.summary.create_file_writer(os.path.join(log_dir, "ssl"))
    self._probe, self.num_images = probe, num_images
    self.spec = spec
    self.every_steps = max(1, int(every_steps))

  @property
  def probe(self) -> dict | None:
    """The first ``num_images`` of the probe batch (made on first use when a function was given)."""
    if callable(self._probe):
      self._probe = self._probe()
    return None if self._probe is None else {k: v[: self.num_images] for k, v in self._probe.items()}

  def on_train_batch_end(self, batch, logs=None):
    step = int(self.model.optimizer.iterations.numpy())
    if logs and step % self.every_steps == 0:
      # record_if(True): Keras's TensorBoard callback leaves a step-based recording condition installed.
      with self.writer.as_default(step=step), tf.summary.record_if(True):
        for k, v in logs.items():
          tf.summary.scalar(f"step/{k}", float(v))

  def on_epoch_end(self, epoch, logs=None):
    model = self.model
    bins = model.reset_mask_histogram()
    with self.writer.as_default(step=epoch + 1), tf.summary.record_if(True):
      if sum(bins) > 0:
        counts = np.repeat(np.arange(len(bins)), np.asarray(bins, np.int64))
        tf.summary.histogram("mask_count", counts, buckets=len(bins))
        tf.summary.scalar("mask_count_mean", float(counts.mean()))
      if self._probe is not None and model.method.unlabeled:
        tf.summary.image("weak | masked strong | mixed", self.pictures(), max_outputs=self.num_images)
    self.writer.flush()

  def pictures(self) -> np.ndarray:
    """[N, H, 3W, 3] uint8 rows: weak view, masked strong view, mixed view, with keypoints drawn.

    The model's state is left as it was: the teacher pass runs batch norm as the step does (``teacher_bn_mode``
    "train" updates the moving statistics, by 10% per call with torch's momentum), and a picture must not move
    the statistics that the last epoch's evaluation measured and that ``final.keras`` and the SavedModel keep."""
    model = self.model
    state = [(v, v.numpy()) for v in model.non_trainable_variables]
    try:
      return self._draw(model)
    finally:
      for v, value in state:
        v.assign(value)

  def _draw(self, model) -> np.ndarray:
    # The probe holds what the step's teacher reads: the weak views (and, for the "labels" teacher of the oracle
    # presets, their ground-truth heatmaps and weights).
    probe = {k: tf.convert_to_tensor(v) for k, v in self.probe.items()}
    x_w = probe["image"]
    h_t, _ = model.targets(0, probe)
    views = model.strong_views(x_w, h_t, model.mask_count(h_t), tf.constant([7, 11], tf.int64))
    x_s, h_s = views["strong"], views["targets"]
    lam, perm = tf.constant(0.5), tf.roll(tf.range(tf.shape(x_w)[0]), 1, 0)
    x_m = mixup.mix(x_w, lam, perm)
    rows = []
    for i in range(x_w.shape[0]):
      panels = []
      for img, hm in ((x_w, h_t), (x_s, h_s), (x_m, None)):
        pic = ops.denormalize(img[i]).numpy()
        if hm is not None:
          kps, scores = codec.decode_heatmaps(hm[i])
          pic = visualize.draw_keypoints(
            pic, model.geometry.to_input(kps).numpy(), self.spec, scores.numpy(), threshold=0.1
          )
        panels.append(pic)
      rows.append(np.concatenate(panels, axis=1))
    return np.stack(rows)
