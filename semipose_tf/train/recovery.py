"""Losing no work: crash-safe backups in two generations, finite-only saves, and a lock on the work directory.

Backup layout (``<work_dir>/backup/``)::

  current/    latest.weights.h5 + training_metadata.json   (one unit: written aside, then renamed into place)
  previous/   the generation before
  .tmp-*/     a generation being written (a kill leaves it; the next save or resume removes it)

A save writes the new generation into a temporary folder, then renames ``current`` to ``previous`` and the new one
to ``current``: a kill at any instant leaves at least one whole generation. A resume loads ``current``, and if it
is missing or damaged, says so and loads ``previous``; if neither loads, the error names the files and says how to
start again from the last checkpoint. Weights that are not finite are never saved.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import socket
import tempfile

import keras
import numpy as np

from semipose_tf.models.factory import first_nonfinite

WEIGHTS = "latest.weights.h5"
METADATA = "training_metadata.json"


class BackupWriteError(RuntimeError):
  """A backup generation could not be written (a full disk); the previous generations are left whole."""


class NonFiniteWeights(RuntimeError):
  """A network's weights hold NaN or infinity; they are not saved."""


def check_finite(model: keras.Model, what: str) -> None:
  """Raises NonFiniteWeights naming the first non-finite variable of ``model``."""
  bad = first_nonfinite(model)
  if bad is not None:
    raise NonFiniteWeights(f"{what}: not saved, the weights are not finite (first: {bad.path})")


class Backup(keras.callbacks.BackupAndRestore):
  """BackupAndRestore in two crash-safe generations (module docstring), every ``save_freq`` steps and every epoch.

  It builds on Keras's private parts of BackupAndRestore on purpose (``_save_model``, ``_current_epoch``,
  ``_last_batch_seen``, and ``model._initial_epoch``, which ``fit`` reads to resume): the public callback has no
  hook for where and how the backup is written, and writing our own resume logic would duplicate ``fit``'s.
  tests/test_keras_private.py fails loudly if Keras changes any of them.

  Started again with the same work directory, ``fit`` resumes from the last whole backup: weights, optimizer state
  and step counter (so the learning-rate schedule and the step seeds continue), at the start of the epoch that
  was interrupted. A finished run started again resumes after its last epoch and does nothing.

  Args:
    backup_dir: The backup folder.
    save_freq: Steps between backups, or "epoch".
    restart_hint: Appended to the error when no generation can be loaded (how to start again).
  """

  def __init__(self, backup_dir: str, save_freq="epoch", restart_hint: str = ""):
    super().__init__(backup_dir, save_freq=save_freq, delete_checkpoint=False)
    self.restart_hint = restart_hint
    self.skipped_nonfinite = False

  def _generation(self, name: str) -> str:
    return os.path.join(self.backup_dir, name)

  def on_epoch_begin(self, epoch, logs=None):
    # Keras's BackupAndRestore counts epochs only at epoch ends, so after a resume its first mid-epoch backups
    # would record epoch 0 and the next resume would start over: record the epoch being trained instead.
    self._current_epoch = epoch

  def on_epoch_end(self, epoch, logs=None):
    # Not here: an epoch counts as done only after its evaluation, checkpoints and history row (EpochDone, the
    # last callback). Recorded here, a kill during the evaluation would resume at the next epoch and lose this one.
    pass

  def epoch_done(self, epoch, logs=None):
    """Records ``epoch`` as finished (the next resume starts after it); called by :class:`EpochDone`."""
    super().on_epoch_end(epoch, logs)
    if self.save_freq != "epoch":
      self._save_model()

  @property
  def has_generation(self) -> bool:
    """Whether a whole backup generation exists (something to resume from)."""
    return any(_holds_files(self._generation(g)) for g in ("current", "previous"))

  def _save_model(self):
    try:
      check_finite(self.model, "backup")
    except NonFiniteWeights:
      self.skipped_nonfinite = True  # The previous generations stay: they hold the last finite state.
      return
    os.makedirs(self.backup_dir, exist_ok=True)
    self._remove_stale_temps()
    # Checked before writing: h5py crashes the process (a segfault) when the disk fills during save_weights.
    need = 64 * 1024 + 1.2 * sum(
      int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize
      for v in list(self.model.weights) + list(getattr(self.model.optimizer, "variables", []))
    )
    free = shutil.disk_usage(self.backup_dir).free
    if free < need:
      raise BackupWriteError(self._full_message(f"needs about {need / 1e6:.1f} MB, {free / 1e6:.1f} MB free"))
    tmp = tempfile.mkdtemp(prefix=".tmp-", dir=self.backup_dir)
    try:
      self.model.save_weights(os.path.join(tmp, WEIGHTS), overwrite=True)
      with open(os.path.join(tmp, METADATA), "w") as f:
        json.dump({"epoch": self._current_epoch, "batch": self._last_batch_seen}, f)
        f.flush()
        os.fsync(f.fileno())
    except OSError as e:
      shutil.rmtree(tmp, ignore_errors=True)
      raise BackupWriteError(self._full_message(e.strerror or str(e))) from None
    current, previous = self._generation("current"), self._generation("previous")
    if os.path.isdir(current):
      if os.path.isdir(previous):
        shutil.rmtree(previous)
      os.replace(current, previous)
    os.replace(tmp, current)

  def _full_message(self, why: str) -> str:
    then = (
      "the previous backup is whole: free some space and run the same command again to resume from it"
      if self.has_generation
      else "no backup was written yet: free some space and run the same command again"
    )
    return f"cannot write the backup into {self.backup_dir} ({why}); {then}"

  def _remove_stale_temps(self):
    for name in os.listdir(self.backup_dir):
      if name.startswith(".tmp-"):
        shutil.rmtree(os.path.join(self.backup_dir, name), ignore_errors=True)

  def _load_from(self, folder: str) -> None:
    weights, metadata = os.path.join(folder, WEIGHTS), os.path.join(folder, METADATA)
    with open(metadata) as f:
      epoch = int(json.load(f)["epoch"])
    if not self.model.optimizer.built:
      self.model.optimizer.build(self.model.trainable_variables)
    self.model.load_weights(weights)
    self.model._initial_epoch = epoch  # What keras.callbacks.BackupAndRestore sets to resume at that epoch.
    self._current_epoch = epoch

  def on_train_begin(self, logs=None):
    # An older run's single generation (latest.weights.h5 directly in backup_dir) counts as "current".
    legacy = os.path.exists(os.path.join(self.backup_dir, WEIGHTS))
    candidates = [self._generation("current"), self._generation("previous")] + ([self.backup_dir] if legacy else [])
    candidates = [c for c in candidates if _holds_files(c)]
    failures = []
    for folder in candidates:
      try:
        self._load_from(folder)
      except (OSError, ValueError, KeyError, TypeError) as e:  # Truncated h5, bad json, missing file.
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        failures.append(f"{folder}: {type(e).__name__}: {first}")
        continue
      if failures:
        print(f"warning: the newest backup could not be read ({failures[0]}); resumed from {folder} instead")
      return
    if failures:
      raise RuntimeError(
        "no backup generation of this run can be read: "
        + "; ".join(failures)
        + (f". {self.restart_hint}" if self.restart_hint else "")
      )


class WorkDirLock:
  """An exclusive lock on a work directory for one run (``<work_dir>/.lock`` holds the pid and host).

  A second run on the same directory is refused with the holder's pid. A lock whose process no longer exists on
  this host is stale: it is replaced, with a warning.
  """

  def __init__(self, work_dir: str, user: str = "run", option: str = "--work_dir"):
    self.path = os.path.join(work_dir, ".lock")
    self.held = False
    self.user, self.option = user, option  # For the message: "in use by another <user>; use another <option>".

  def _holder(self) -> dict:
    try:
      with open(self.path) as f:
        return json.load(f)
    except (OSError, ValueError):
      return {}

  def acquire(self) -> None:
    os.makedirs(os.path.dirname(self.path), exist_ok=True)
    me = {
      "pid": os.getpid(),
      "host": socket.gethostname(),
      "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    for _ in range(2):
      try:
        fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
      except FileExistsError:
        holder = self._holder()
        pid, host = holder.get("pid"), holder.get("host")
        if not holder and _age_s(self.path) > 5:  # Empty or unreadable: a run killed as it took the lock.
          print(f"warning: removing the lock {self.path}, which names no run (one killed as it started)")
          os.remove(self.path)
          continue
        if host == me["host"] and isinstance(pid, int) and not _alive(pid):
          print(f"warning: removing the stale lock of pid {pid} (no longer running) on {self.path}")
          os.remove(self.path)
          continue
        raise RuntimeError(
          f"{'work directory' if self.option == '--work_dir' else 'folder'} "
          f"{os.path.dirname(self.path)} is in use by pid {pid} on {host} (since "
          f"{holder.get('started')}); wait for that {self.user}, stop it, or use another "
          f"{self.option} (a lock left by a crash on another host: delete {self.path})"
        ) from None
      with os.fdopen(fd, "w") as f:
        json.dump(me, f)
      self.held = True
      return

  def release(self) -> None:
    if self.held and self._holder().get("pid") == os.getpid():
      os.remove(self.path)
    self.held = False

  def __enter__(self):
    self.acquire()
    return self

  def __exit__(self, *exc):
    self.release()


class EpochDone(keras.callbacks.Callback):
  """The last callback of a run: marks the epoch finished in the backup once everything else has seen it.

  A kill or Ctrl-C before this point (during the epoch's evaluation, checkpointing or history row) resumes from the
  epoch's last mid-epoch backup and trains it again, so every epoch gets its evaluation, checkpoint and history row
  exactly once.
  """

  def __init__(self, backup: Backup):
    super().__init__()
    self.backup = backup

  def on_epoch_end(self, epoch, logs=None):
    self.backup.epoch_done(epoch, logs)


def _age_s(path: str) -> float:
  """Seconds since ``path`` was last written (0 if it is gone)."""
  try:
    return datetime.datetime.now().timestamp() - os.path.getmtime(path)
  except OSError:
    return 0.0


def _holds_files(folder: str) -> bool:
  return os.path.isdir(folder) and bool(os.listdir(folder))


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # Exists, owned by someone else.
    return True
  return True
