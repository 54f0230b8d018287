"""Faults, round two: corrupt records and edited manifests are named, a changed configuration never resumes
silently (issue 21)."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT, run_script, shared_path
from training_data import make_layout

TINY = [
  "INPUT_SIZE = (64, 64)",
  "DataConfig.input_size = (64, 64)",
  "DataConfig.labeled_batch_size = 2",
  "DataConfig.unlabeled_batch_size = 2",
  "build_pose_model.pretrained = None",
  "build_pose_model.width = 8",
  "build_pose_model.deconv_filters = (16, 16, 16)",
  "train.extra_callbacks = []",
  'FitConfig.checkpoint_monitor = "val_heatmap_loss"',
  'FitConfig.checkpoint_mode = "min"',
  "FitConfig.verbose = 2",
]


@pytest.fixture(scope="session")
def pristine(tmp_path_factory):
  return make_layout(str(tmp_path_factory.mktemp("data")))


@pytest.fixture
def data_root(pristine, tmp_path):
  """A private copy of the tiny data sets, free to damage."""
  root = str(tmp_path / "data")
  shutil.copytree(pristine, root)
  return root


def _train(data_root, work_dir, *params, flags=(), epochs=1, steps=2, process=False):
  """scripts/train.py in this process (conftest.run_script), or in a new one with ``process=True``."""
  args = [
    "--gin_file=coco_1k.gin",
    *flags,
    f"--data_root={data_root}",
    f"--work_dir={work_dir}",
    *[
      f"--gin_param={p}"
      for p in TINY + [f"FitConfig.epochs = {epochs}", f"FitConfig.steps_per_epoch = {steps}", *params]
    ],
  ]
  if not process:
    return run_script("scripts/train.py", *args)
  return subprocess.run(
    [sys.executable, os.path.join(ROOT, "scripts", "train.py"), *args], capture_output=True, text=True
  )


def _flip_a_byte_in_the_middle(shard):
  with open(shard, "r+b") as f:
    size = f.seek(0, 2)
    f.seek(size // 2)
    byte = f.read(1)
    f.seek(size // 2)
    f.write(bytes([byte[0] ^ 0xFF]))
  return size


def _only_shard(set_dir):
  (name,) = [n for n in os.listdir(set_dir) if n.endswith(".tfrecord")]
  return os.path.join(set_dir, name)


@pytest.mark.slow
def test_a_corrupt_labeled_shard_is_named_with_the_command_that_rebuilds_it(data_root, tmp_path):
  shard = _only_shard(os.path.join(data_root, "coco_1k", "labeled"))
  size = _flip_a_byte_in_the_middle(shard)
  assert os.path.getsize(shard) == size  # The manifest's size check still passes.
  r = _train(data_root, str(tmp_path / "run"), "MethodConfig.method = 'supervised'")
  assert r.returncode == 2, r.stderr[-2000:]
  lines = r.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: corrupt TFRecord shard " + shard), r.stderr[-2000:]
  assert "corrupted record at" in lines[0] and "{{" not in lines[0] and "make_tfrecords.py --help" in lines[0]


def test_a_corrupt_eval_shard_is_named_by_evaluate(data_root, tmp_path):
  from semipose_tf.models import build_pose_model

  ckpt = str(tmp_path / "net.keras")
  build_pose_model("resnet18", (64, 64), 14, width=8, deconv_filters=(16, 16, 16)).save(ckpt)
  eval_dir = os.path.join(data_root, "lspet", "eval")
  shard = _only_shard(eval_dir)
  _flip_a_byte_in_the_middle(shard)
  r = run_script("scripts/evaluate.py", "lsp", "--checkpoint", ckpt, "--eval_dir", eval_dir)
  assert r.returncode == 2 and r.stderr.strip().splitlines() == [r.stderr.strip()], r.stderr[-2000:]
  assert r.stderr.startswith(f"error: corrupt TFRecord shard {shard}"), r.stderr[-2000:]


def test_an_edited_manifest_total_is_refused(data_root, tmp_path):
  path = os.path.join(data_root, "coco_train", "unlabeled", "manifest.json")
  manifest = json.load(open(path))
  listed = manifest["num_instances"]
  manifest["num_instances"] = 2
  json.dump(manifest, open(path, "w"))
  r = _train(data_root, str(tmp_path / "run"))
  assert r.returncode == 2, r.stderr[-2000:]
  assert f"num_instances is 2 but its shards add up to {listed}" in r.stderr and path in r.stderr


@pytest.mark.slow
def test_a_changed_configuration_is_refused_with_the_bindings_named(data_root, tmp_path):
  work = str(tmp_path / "run")
  r = _train(data_root, work, "MethodConfig.method = 'supervised'")
  assert r.returncode == 0, r.stderr[-2000:]
  r = _train(data_root, work, "MethodConfig.method = 'single'", "OptimizerConfig.learning_rate = 0.01", epochs=2)
  assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr[-2000:]
  for change in (
    "MethodConfig.method: 'supervised' -> 'single'",
    "OptimizerConfig.learning_rate: 0.001 (default) -> 0.01",
    "FitConfig.epochs: 1 -> 2",
    "--allow_config_change",
  ):
    assert change in r.stderr, (change, r.stderr)
  assert "supervised" in open(os.path.join(work, "config.gin")).read()  # Not rewritten.
  # Asked for explicitly: it resumes, and the old settings are kept beside the new ones.
  r = _train(data_root, work, "MethodConfig.method = 'supervised'", epochs=2, flags=["--allow_config_change"])
  assert r.returncode == 0 and "Epoch 2/2" in r.stdout and "Epoch 1/2" not in r.stdout, r.stderr[-2000:]
  kept = [n for n in os.listdir(work) if n.startswith("config_before_")]
  assert len(kept) == 1 and "FitConfig.epochs = 1" in open(os.path.join(work, kept[0])).read()
  # A harmless change (how it reports) resumes without asking.
  r = _train(data_root, work, "MethodConfig.method = 'supervised'", "FitConfig.verbose = 0", epochs=2)
  assert r.returncode == 0, r.stderr[-2000:]


# A configuration as runs wrote it before the typed configuration (the flat train.* layer, defaults restated).
_OLD_CONFIG = """
train.model_fn = @build_pose_model
DATA_ROOT = 'data'
train.data_root = %DATA_ROOT
train.learning_rate = 1e-3
train.labeled_batch_size = 32
train.seed = 0
train.deterministic = False
train.warmup_epochs = 0
train.method_config = @MethodConfig()
MethodConfig.masking = @Masking()
Masking.gamma = 0.55
Masking.mask_max = 8
train.method = 'supervised'
train.labeled_dir = 'coco_1k/labeled'
train.epochs = 1
"""


def test_a_work_directory_of_the_flat_layout_resumes_under_the_typed_names_or_is_refused_by_them():
  """Old config.gin files bind ``train.seed``; today's bind ``RuntimeConfig.seed``: the same values resume, another
  value is refused naming today's binding; old names on the command line are read with a note; an old name in a
  gin file is a one-line error giving the new one."""
  import gin

  from semipose_tf import configurable
  from semipose_tf.train import run_config

  new = """
train.data = @DataConfig()
train.method = @MethodConfig()
train.optimizer = @OptimizerConfig()
train.runtime = @RuntimeConfig()
train.fit = @FitConfig()
train.model_fn = @build_pose_model
DATA_ROOT = 'data'
DataConfig.data_root = %DATA_ROOT
MethodConfig.masking = @Masking()
MethodConfig.method = 'supervised'
DataConfig.labeled_dir = 'coco_1k/labeled'
FitConfig.epochs = 1
"""
  assert run_config.changed_bindings(_OLD_CONFIG, new) == []
  assert run_config.changed_bindings(_OLD_CONFIG, new + "RuntimeConfig.seed = 3\nMasking.mask_max = 12\n") == [
    "Masking.mask_max: 8 -> 12",
    "RuntimeConfig.seed: 0 -> 3",
  ]
  assert run_config.changed_bindings(_OLD_CONFIG.replace("'supervised'", "'plus'"), new) == [
    "MethodConfig.method: 'plus' -> 'supervised'"
  ]
  gin.clear_config()
  try:
    configurable.parse_gin(["coco_1k.gin"], ["train.seed = 3", "train.method = 'single'"])
    assert gin.query_parameter("RuntimeConfig.seed") == 3 and gin.query_parameter("MethodConfig.method") == "single"
    gin.clear_config()
    with pytest.raises(
      ValueError, match=r"^unknown parameter FitConfig.epoch \(a --gin_param, line \d+\); FitConfig takes: epochs,"
    ):
      configurable.parse_gin(["coco_1k.gin"], ["FitConfig.epoch = 3"])
  finally:
    gin.clear_config()


def test_an_old_binding_in_a_gin_file_names_its_new_name(tmp_path):
  import gin

  from semipose_tf import configurable

  old = tmp_path / "mine.gin"
  old.write_text("include 'coco_1k.gin'\ntrain.labeled_batch_size = 4\n")
  gin.clear_config()
  try:
    with pytest.raises(ValueError) as e:
      configurable.parse_gin([str(old)])
  finally:
    gin.clear_config()
  assert str(e.value) == (
    f"train.labeled_batch_size ({old}, line 2) is now DataConfig.labeled_batch_size: bind that name (the typed "
    "configuration, semipose_tf/train/config.py)"
  )


_SLOW_EVAL_RUN = r"""
import os, sys, time
sys.path.insert(0, {tests!r}); sys.path.insert(0, {root!r})
import keras
from tiny_nets import tiny_model_fn
from semipose_tf.train import experiment


class SlowEvaluation(keras.callbacks.Callback):  # Stands in for an evaluation callback: it logs, then takes time.
  def on_epoch_end(self, epoch, logs=None):
    open({marks!r}, "a").write(f"evaluating {{epoch}}\n")
    logs["val_score"] = float(epoch)
    if {slow} and epoch == 1:
      time.sleep(60)  # The test kills the run here.


from semipose_tf.method_config import MethodConfig
from semipose_tf.train.config import DataConfig, FitConfig
experiment.train({work!r}, DataConfig({data!r} + "/coco_1k/labeled", input_size=(64, 64), labeled_batch_size=2),
                 MethodConfig("supervised"), model_fn=tiny_model_fn, extra_callbacks=[SlowEvaluation()],
                 fit=FitConfig(epochs=3, steps_per_epoch=3, checkpoint_monitor="val_score", checkpoint_mode="max",
                               backup_every_steps=1, verbose=0))
"""


@pytest.mark.slow
def test_a_kill_during_the_end_of_epoch_evaluation_loses_no_epoch(data_root, tmp_path):
  """Killed while epoch 2 is being evaluated: the resume trains and evaluates epoch 2 again, so every epoch has its
  evaluation, history row and checkpoint exactly once (before: epoch 2 was recorded as done and never evaluated)."""
  import csv
  import signal
  import time

  work, marks = str(tmp_path / "run"), str(tmp_path / "marks.txt")
  tests = os.path.dirname(__file__)
  code = lambda slow: _SLOW_EVAL_RUN.format(tests=tests, root=ROOT, marks=marks, slow=slow, work=work, data=data_root)
  proc = subprocess.Popen(
    [sys.executable, "-c", code(True)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
  )
  deadline = time.time() + 240
  while time.time() < deadline and proc.poll() is None:
    if os.path.exists(marks) and "evaluating 1" in open(marks).read():
      time.sleep(0.5)
      proc.send_signal(signal.SIGKILL)
      break
    time.sleep(0.05)
  out = proc.communicate()[0]
  assert proc.returncode == -signal.SIGKILL, out[-3000:]
  r = subprocess.run([sys.executable, "-c", code(False)], capture_output=True, text=True)
  assert r.returncode == 0, r.stderr[-3000:]
  rows = list(csv.DictReader(open(os.path.join(work, "history.csv"))))
  assert [int(r["epoch"]) for r in rows] == [0, 1, 2], rows
  assert [float(r["val_score"]) for r in rows] == [0.0, 1.0, 2.0]
  assert open(marks).read().split("\n").count("evaluating 1") == 2  # Killed once, then evaluated again.
  assert os.path.exists(os.path.join(work, "checkpoints", "final.keras"))


@pytest.fixture
def small_disk(tmp_path):
  """A 600 KB tmpfs (a full disk in miniature); needs root and mount, which CI's machine gives."""
  where = tmp_path / "disk"
  where.mkdir()
  r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(where)], capture_output=True, text=True)
  if r.returncode != 0:
    pytest.skip(f"cannot mount a small tmpfs here ({r.stderr.strip()[:100]}): the full-disk cases need it")
  yield str(where)
  subprocess.run(["umount", "-l", str(where)], capture_output=True)


@pytest.mark.slow
def test_a_full_disk_is_one_line_for_training_export_and_the_converter(data_root, small_disk, tmp_path):
  work = os.path.join(small_disk, "run")
  # In its own process: h5py used to crash (exit 139) on a full disk, which would take the test process down.
  r = _train(data_root, work, "MethodConfig.method = 'supervised'", "FitConfig.backup_every_steps = 1", process=True)
  assert r.returncode == 2, (r.returncode, r.stderr[-2000:])  # Not 139: h5py crashed on a full disk before.
  lines = r.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith(f"error: cannot write the backup into {work}/backup"), lines
  assert "free some space and run the same command again" in lines[0]
  # Room again: the same command resumes and finishes.
  subprocess.run(["mount", "-o", "remount,size=20m", small_disk], check=True)
  r = _train(data_root, work, "MethodConfig.method = 'supervised'", "FitConfig.backup_every_steps = 1")
  assert r.returncode == 0 and os.path.exists(os.path.join(work, "checkpoints", "final.keras")), r.stderr[-2000:]

  # export.py and the converter on the disk filled up: one line naming the output; nothing half-written published.
  def fill(name):  # What is left of the disk, taken.
    with open(os.path.join(small_disk, name), "wb") as f:
      try:
        f.write(b"\0" * 30_000_000)
      except OSError:
        pass

  fill("filler1")
  out = os.path.join(small_disk, "sm", "1")
  r = run_script("scripts/export.py", os.path.join(work, "checkpoints", "final.keras"), out)
  assert r.returncode == 2 and r.stderr.strip().splitlines() == [r.stderr.strip()], r.stderr[-2000:]
  assert r.stderr.startswith(f"error: cannot write the SavedModel {out}") and "{{" not in r.stderr
  assert not os.path.exists(out)
  lspet = shared_path("lspet")
  fill("filler2")  # The failed export cleaned up after itself.
  out = os.path.join(small_disk, "lsp")
  r = run_script(
    "scripts/make_tfrecords.py",
    "lsp",
    "--joints",
    os.path.join(lspet, "joints.mat"),
    "--images",
    os.path.join(lspet, "images"),
    "--out",
    out,
    "--sets",
    "eval",
    "--num_test",
    "50",
  )
  assert r.returncode == 2 and r.stderr.strip().splitlines() == [r.stderr.strip()], r.stderr[-2000:]
  assert r.stderr.startswith(f"error: cannot write the records under {out}") and "No space left" in r.stderr
  assert not any(n == "manifest.json" for _, _, fs in os.walk(out) for n in fs)


class _Killed(BaseException):
  """A kill at one point of the epoch end (BaseException: nothing in the trainer catches it)."""


@pytest.mark.parametrize(
  "boundary", ["PoseCheckpoint", "TensorBoard", "FiniteCSVLogger", "SemiSupervisedSummaries", "EpochDone"]
)
def test_a_kill_after_any_epoch_end_step_records_each_epoch_once(data_root, tmp_path, monkeypatch, boundary):
  """Killed right after one epoch-end step of epoch 2 (its checkpoint, its TensorBoard summary, its history row, the
  pictures, or the backup's "epoch done"), then started again: every epoch has one history row, in order, and the
  run finishes (before: a kill after the history row gave epochs 0, 1, 1, 2)."""
  import csv

  import keras
  from tiny_nets import tiny_model_fn

  from semipose_tf.method_config import MethodConfig
  from semipose_tf.train import callbacks, config, experiment, recovery

  owner = {"EpochDone": recovery.EpochDone, "TensorBoard": keras.callbacks.TensorBoard}.get(boundary) or getattr(
    callbacks, boundary
  )
  original = owner.on_epoch_end

  def then_killed(self, epoch, logs=None):
    original(self, epoch, logs)
    if epoch == 1:
      raise _Killed()

  work = str(tmp_path / "run")
  run = lambda: experiment.train(
    work,
    config.DataConfig(os.path.join(data_root, "coco_1k", "labeled"), input_size=(64, 64), labeled_batch_size=2),
    MethodConfig("supervised"),
    fit=config.FitConfig(
      epochs=3, steps_per_epoch=2, backup_every_steps=1, checkpoint_monitor="loss_s", checkpoint_mode="min", verbose=0
    ),
    model_fn=tiny_model_fn,
  )
  monkeypatch.setattr(owner, "on_epoch_end", then_killed)
  with pytest.raises(_Killed):
    run()
  monkeypatch.setattr(owner, "on_epoch_end", original)
  run()
  rows = list(csv.DictReader(open(os.path.join(work, "history.csv"))))
  assert [int(r["epoch"]) for r in rows] == [0, 1, 2], rows
  assert os.path.exists(os.path.join(work, "checkpoints", "final.keras"))
