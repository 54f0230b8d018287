"""Training under faults: divergence never reaches a checkpoint, backups survive kills at any instant, damaged
backups fall back or say how to restart, one run per work directory, bad settings are one-line errors."""

import json
import os
import random
import re
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
from conftest import ROOT, run_script, shared_path
from training_data import make_layout

# The supervised method: these tests are about recovery, which every method shares, and a supervised step traces in
# a fraction of a teacher-student one's time (tests/test_training.py resumes a killed "plus" run).
TINY = [
  "MethodConfig.method = 'supervised'",
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
  "FitConfig.log_every_steps = 2",
]


@pytest.fixture(scope="session")
def data_root(tmp_path_factory):
  return make_layout(str(tmp_path_factory.mktemp("data")))


def _train(data_root, work_dir, *params, **kwargs):
  """scripts/train.py with _cmd's arguments in this process (conftest.run_script): the tests that do not kill it."""
  return run_script("scripts/train.py", *_cmd(data_root, work_dir, *params, **kwargs)[2:])


def _cmd(data_root, work_dir, *params, epochs=3, steps=6, backup_every=2):
  # --allow_config_change: these tests resume on purpose with more epochs or another learning rate.
  return [
    sys.executable,
    os.path.join(ROOT, "scripts", "train.py"),
    "--gin_file=coco_1k.gin",
    "--allow_config_change",
    f"--data_root={data_root}",
    f"--work_dir={work_dir}",
    *[
      f"--gin_param={p}"
      for p in TINY
      + [
        f"FitConfig.epochs = {epochs}",
        f"FitConfig.steps_per_epoch = {steps}",
        f"FitConfig.backup_every_steps = {backup_every}",
        *params,
      ]
    ],
  ]


@pytest.fixture(scope="session")  # Session: pytest-xdist may run other modules' tests between this module's.
def two_epochs(data_root, tmp_path_factory):
  """One finished 2-epoch run (6 steps per epoch, a backup every 2 steps), made once; tests take copies of it."""
  work = str(tmp_path_factory.mktemp("two_epochs") / "run")
  r = _train(data_root, work, epochs=2)
  assert r.returncode == 0, r.stderr[-3000:]
  return work


def _copy_of(run: str, tmp_path) -> str:
  """A private copy of the shared run's work directory."""
  import shutil

  return shutil.copytree(run, str(tmp_path / "run"))


def _finite_file(path):
  import semipose_tf.models  # noqa: F401

  net = keras.models.load_model(path)
  return all(np.isfinite(w).all() for w in net.get_weights())


@pytest.mark.slow
def test_a_diverged_run_saves_nothing_non_finite_and_resumes_from_the_last_finite_state(
  data_root, two_epochs, tmp_path
):
  work = _copy_of(two_epochs, tmp_path)  # A finished 2-epoch run.
  # The same work dir, 2 more epochs at an absurd rate: diverges, stops, names the last good checkpoint.
  r = _train(data_root, work, "OptimizerConfig.learning_rate = 1e30", epochs=4)
  assert r.returncode == 1 and "training diverged" in r.stderr, r.stderr[-3000:]
  assert "last good checkpoint is" in r.stderr and "last.keras" in r.stderr
  assert "The backup holds the last finite state" in r.stderr
  assert "nan" not in open(os.path.join(work, "history.csv")).read().lower()  # No NaN row to print.
  ckpts = os.path.join(work, "checkpoints")
  for name in os.listdir(ckpts):
    if name.endswith(".keras"):
      assert _finite_file(os.path.join(ckpts, name)), name
  # Rerun at a sane rate: resumes from the last finite backup and ends with a finite final network.
  r = _train(data_root, work, epochs=4)
  assert r.returncode == 0, r.stderr[-3000:]
  assert _finite_file(os.path.join(ckpts, "final.keras"))


def test_the_best_score_survives_a_resume(tmp_path):
  from tiny_nets import TinyPoseNet

  from semipose_tf.train.callbacks import PoseCheckpoint

  net = TinyPoseNet(17, (64, 64, 3))
  first = PoseCheckpoint(net, str(tmp_path), "val_AP", "max")
  first.set_model(net)
  first.on_epoch_end(0, {"val_AP": 0.40})
  best = os.path.join(tmp_path, "best.keras")
  stamp = os.path.getmtime(best)
  again = PoseCheckpoint(net, str(tmp_path), "val_AP", "max")  # A resumed run's callback.
  again.set_model(net)
  assert again.best == 0.40 and again.best_epoch == 1
  time.sleep(0.01)
  again.on_epoch_end(1, {"val_AP": 0.10})  # Worse: best.keras stays.
  assert os.path.getmtime(best) == stamp
  again.on_epoch_end(2, {"val_AP": float("nan")})
  assert os.path.getmtime(best) == stamp
  again.on_epoch_end(3, {"val_AP": 0.55})
  assert json.load(open(os.path.join(tmp_path, "best.json")))["epoch"] == 4


@pytest.mark.slow
def test_kill_at_random_instants_and_resume_every_time(data_root, tmp_path):
  """SIGKILL a run at random instants (backups every step) until it finishes; every restart must resume from a
  whole backup, never behind. Instants are counted in backups, so that the test means the same on a slow machine:
  each cycle kills after a random number of new backups, plus a random fraction of a step, so kills land before,
  during and after backup writes."""
  work = str(tmp_path / "run")
  cmd = _cmd(data_root, work, epochs=4, steps=6, backup_every=1)
  meta = os.path.join(work, "backup", "current", "training_metadata.json")
  rng = random.Random(0)
  kills, progress = 0, []
  for cycle in range(4):
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wanted, seen = rng.randint(2, 9), 0  # Resume redoes the interrupted epoch (6 steps): leave room to finish one.
    last = os.path.getmtime(meta) if os.path.exists(meta) else None
    deadline = time.time() + 300
    while proc.poll() is None and seen < wanted and time.time() < deadline:
      stamp = os.path.getmtime(meta) if os.path.exists(meta) else None
      if stamp != last:
        seen, last = seen + 1, stamp
      time.sleep(0.02)
    time.sleep(rng.uniform(0.0, 0.3))
    if proc.poll() is not None:
      out = proc.communicate()[0]
      assert proc.returncode == 0, f"cycle {cycle} failed after {kills} kills:\n{out[-3000:]}"
      break
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    kills += 1
    state = json.load(open(meta))  # Whole after every kill ...
    progress.append(state["epoch"])  # ... and never behind (completed epochs; a resume redoes the interrupted one).
  else:
    r = subprocess.run(cmd, capture_output=True, text=True)  # After the last kill, a run to the end.
    assert r.returncode == 0, f"after {kills} kills:\n{r.stdout[-2000:]}{r.stderr[-3000:]}"
  assert kills >= 3, f"the loop should have killed the run several times ({kills})"
  assert progress == sorted(progress) and progress[-1] > 0, progress
  assert _finite_file(os.path.join(work, "checkpoints", "final.keras"))
  print(f"survived {kills} kills; completed epochs in the backup after each: {progress}")


@pytest.mark.slow
def test_a_damaged_backup_falls_back_or_names_the_file(data_root, two_epochs, tmp_path):
  work = _copy_of(two_epochs, tmp_path)  # A finished 2-epoch run.
  current = os.path.join(work, "backup", "current", "latest.weights.h5")
  with open(current, "r+b") as f:
    f.truncate(os.path.getsize(current) // 3)
  r = _train(data_root, work, epochs=3)
  assert r.returncode == 0, r.stderr[-3000:]
  assert "newest backup could not be read" in r.stdout and "resumed from" in r.stdout
  # Both generations damaged (a truncated metadata json and truncated weights): an error that says what to do.
  for gen in ("current", "previous"):
    with open(os.path.join(work, "backup", gen, "training_metadata.json"), "w") as f:
      f.write('{"epo')
  r = _train(data_root, work, epochs=4)
  assert r.returncode == 2, r.stderr[-3000:]
  err = r.stderr.strip().splitlines()[-1]
  assert err.startswith("error: no backup generation of this run can be read")
  assert os.path.join("backup", "current") in err and os.path.join("backup", "previous") in err
  assert "train.init_checkpoint" in err and "last.keras" in err


@pytest.mark.slow
def test_one_run_per_work_directory(data_root, tmp_path):
  from semipose_tf.train.recovery import WorkDirLock

  work = str(tmp_path / "run")
  with WorkDirLock(work):  # This (live) process holds it.
    r = subprocess.run(_cmd(data_root, work, epochs=1), capture_output=True, text=True)
  assert r.returncode == 2 and f"is in use by pid {os.getpid()}" in r.stderr
  dead = subprocess.Popen([sys.executable, "-c", "pass"])
  dead.wait()
  with open(os.path.join(work, ".lock"), "w") as f:  # A lock left by a process that died.
    import socket

    json.dump({"pid": dead.pid, "host": socket.gethostname(), "started": "earlier"}, f)
  r = _train(data_root, work, epochs=1)
  assert r.returncode == 0 and "stale lock" in r.stdout, r.stderr[-3000:]
  assert not os.path.exists(os.path.join(work, ".lock"))


BAD_SETTINGS = [
  ("train.no_such_setting = 3", "unknown parameter train.no_such_setting"),
  ("DataConfig.input_size = (70, 64)", "multiples of 32"),
  ('DataConfig.spec = "nope"', "unknown keypoint spec 'nope'"),
  ("MethodConfig.method = plus", "gin syntax error in a --gin_param: MethodConfig.method = plus (strings need quotes"),
  ("DataConfig.labeled_batch_size = 0", "DataConfig.labeled_batch_size must be a whole number >= 1, got 0"),
  ("FitConfig.epochs = -1", "FitConfig.epochs must be a whole number >= 1, got -1"),
  ("OptimizerConfig.learning_rate = -0.1", "OptimizerConfig.learning_rate must be a positive number, got -0.1"),
  ("train.init_checkpoint = '/tmp'", "train.init_checkpoint not found: /tmp"),
]


@pytest.mark.parametrize("param,message", BAD_SETTINGS)
def test_bad_settings_are_one_line_errors(data_root, tmp_path, param, message):
  r = _train(data_root, str(tmp_path / "run"), param, epochs=1)  # In this process: a bad setting costs no TF start.
  assert r.returncode == 2 and message in r.stderr, r.stderr[-2000:]
  assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr[-2000:]


@pytest.mark.slow
def test_a_bad_setting_is_one_line_from_the_command_line(data_root, tmp_path):
  """The same, as a user sees it: a new process, whose stderr holds nothing else (no TensorFlow start-up lines)."""
  param, message = BAD_SETTINGS[5]
  r = subprocess.run(_cmd(data_root, str(tmp_path / "run"), param, epochs=1), capture_output=True, text=True)
  assert r.returncode == 2 and r.stderr.strip() == f"error: {message}", r.stderr[-2000:]


@pytest.mark.slow
def test_a_truncated_network_file_is_named_as_such(tmp_path):
  from semipose_tf.models import build_pose_model

  path = str(tmp_path / "net.keras")
  build_pose_model("resnet18", (64, 64), 17, width=8, deconv_filters=(16, 16, 16)).save(path)
  with open(path, "rb") as f:
    head = f.read(4000)
  with open(path, "wb") as f:  # What a full disk or a killed copy leaves.
    f.write(head)
  import tensorflow as tf

  image = str(tmp_path / "photo.png")
  tf.io.write_file(image, tf.io.encode_png(np.zeros((40, 30, 3), np.uint8)))
  for script, args in (
    ("evaluate.py", ["coco", "--checkpoint", path, "--eval_dir", str(tmp_path)]),
    ("export.py", [path, str(tmp_path / "out" / "1")]),
    ("predict.py", ["--model", path, "--image", image, "--boxes", "0,0,20,30"]),
  ):
    r = run_script(os.path.join("scripts", script), *args)
    assert r.returncode == 2 and "Traceback" not in r.stderr, (script, r.stderr[-2000:])
    assert f"{path} is not a complete .keras file (4000 bytes" in r.stderr, (script, r.stderr)


def test_a_network_with_nonfinite_weights_is_refused_by_export_predict_and_evaluate(tmp_path):
  """A diverged checkpoint made elsewhere: every script that loads a network refuses it in one line naming the file
  and the first bad variable (before: export wrote a SavedModel and ONNX, predict wrote NaN keypoints)."""
  import numpy as np

  from semipose_tf.models.factory import build_pose_model

  net = build_pose_model("resnet18", (64, 64), 17, width=8, deconv_filters=(8,))
  final = net.get_layer("final").get_layer("final_conv")
  kernel = final.kernel.numpy()
  kernel[0, 0, 0, 0] = np.nan
  final.kernel.assign(kernel)
  path = str(tmp_path / "diverged.keras")
  net.save(path)
  image = shared_path("coco_mini", "val2017", sorted(os.listdir(shared_path("coco_mini", "val2017")))[0])
  for script, *args in (
    ("scripts/export.py", path, str(tmp_path / "sm" / "1")),
    ("scripts/export.py", path, str(tmp_path / "onnx"), "--format", "onnx"),
    ("scripts/predict.py", "--model", path, "--image", image, "--out", str(tmp_path / "p")),
    ("scripts/evaluate.py", "coco", "--checkpoint", path, "--eval_dir", str(tmp_path)),
  ):
    r = run_script(script, *args)
    assert r.returncode == 2, (script, r.stdout[-500:], r.stderr[-1500:])
    line = r.stderr.strip()
    assert len(line.splitlines()) == 1 and path in line and "weights are not finite (first: " in line, line
  assert not os.path.exists(tmp_path / "sm") and not os.path.exists(tmp_path / "onnx")


def test_predict_refuses_bad_photos_boxes_and_folders_in_one_line(tmp_path):
  """predict.py's inputs as a user gets them wrong: each is one line naming the file, the box or the folder, and
  nothing is written."""
  from semipose_tf.keypoints import COCO17
  from semipose_tf.models.factory import build_pose_model

  net = build_pose_model("resnet18", (64, 64), 17, width=8, deconv_filters=(8,))
  net.keypoint_spec = COCO17
  model = str(tmp_path / "net.keras")
  net.save(model)
  photo = shared_path("coco_mini", "val2017", sorted(os.listdir(shared_path("coco_mini", "val2017")))[0])
  data = open(photo, "rb").read()
  (tmp_path / "empty.jpg").write_bytes(b"")
  (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 3])
  (tmp_path / "notes.jpg").write_bytes(b"not an image at all, but long enough to have a header")
  (tmp_path / "folder").mkdir()
  (tmp_path / "weights.h5").write_bytes(b"x")
  out = str(tmp_path / "out" / "p")
  cases = [
    (["--model", model, "--image", str(tmp_path / "empty.jpg")], f"{tmp_path / 'empty.jpg'} is empty (0 bytes)"),
    (["--model", model, "--image", str(tmp_path / "cut.jpg")], f"{tmp_path / 'cut.jpg'} cannot be decoded"),
    (["--model", model, "--image", str(tmp_path / "notes.jpg")], "notes.jpg is not a JPEG or PNG image"),
    (["--model", model, "--image", photo, "--boxes", "5000,10,50,80"], "box 0 lies outside its"),
    (["--model", model, "--image", photo, "--boxes", "1,2,30,40;1,2,nan,4"], "box 1 is not finite"),
    (["--model", model, "--image", photo, "--boxes", "1,2,three,4"], "--boxes '1,2,three,4': write"),
    (["--model", str(tmp_path / "folder"), "--image", photo], "is a folder with neither saved_model.pb nor deploy"),
    (["--model", str(tmp_path / "weights.h5"), "--image", photo], "weights.h5 is not a model: a .keras file"),
  ]
  for args, message in cases:
    r = run_script("scripts/predict.py", *args, "--out", out)
    line = r.stderr.strip()
    assert r.returncode == 2 and message in line and len(line.splitlines()) == 1, (args, r.stderr[-1500:])
  assert not os.path.exists(tmp_path / "out")


@pytest.mark.parametrize(
  "case",
  ["labels_removed", "small_unlabeled", "unlogged_monitor"],
)
def test_a_run_checks_its_sets_and_its_checkpoint_monitor_before_training(data_root, tmp_path, case):
  """Each of these trained (on nothing, or without ever writing best.keras) or stopped with a raw StopIteration
  before: now one line naming the setting, before the first step. (An empty set cannot be written: the converter
  refuses it; a hand-made one takes the same check as the small one.)"""
  from training_data import write_set

  from semipose_tf.keypoints import COCO17

  params, expected = ["MethodConfig.method = 'plus'"], None
  if case == "labels_removed":
    write_set(str(tmp_path / "stripped"), "unlabeled", COCO17, extra={"labels": "removed from the records"})
    params.append(f"DataConfig.labeled_dir = '{tmp_path / 'stripped'}'")
    expected = "DataConfig.labeled_dir .*stripped holds no labels \\(its manifest: labels removed from the records\\)"
  elif case == "small_unlabeled":  # 2 people, a batch of 4.
    write_set(str(tmp_path / "few"), "unlabeled", COCO17, num_images=1)
    params += [f"DataConfig.unlabeled_dir = '{tmp_path / 'few'}'", "DataConfig.unlabeled_batch_size = 4"]
    expected = "DataConfig.unlabeled_dir .*few holds 2 unlabeled people, fewer than one batch of 4"
  else:
    params.append("FitConfig.checkpoint_monitor = 'val_APP'")
    expected = "FitConfig.checkpoint_monitor = 'val_APP' is not a value this run logs.*it logs: .*val_heatmap_loss"
  work = str(tmp_path / "run")
  r = _train(data_root, work, *params, epochs=1, steps=2)
  assert r.returncode == 2, (r.stdout[-1000:], r.stderr[-2000:])
  line = r.stderr.strip()
  assert len(line.splitlines()) == 1 and re.search(expected, line), line
  assert not os.path.exists(os.path.join(work, "checkpoints", "last.keras"))  # Refused before the first step.


def test_an_unlabeled_set_smaller_than_the_pictures_batch_trains(data_root, tmp_path):
  """2 unlabeled people (one batch of 2) and the pictures' batch of 4: it repeats the set instead of stopping with a
  raw StopIteration after the first epoch."""
  from training_data import write_set

  from semipose_tf.keypoints import COCO17

  write_set(str(tmp_path / "few"), "unlabeled", COCO17, num_images=1)
  work = str(tmp_path / "run")
  r = _train(
    data_root,
    work,
    "MethodConfig.method = 'plus'",
    f"DataConfig.unlabeled_dir = '{tmp_path / 'few'}'",
    epochs=2,
    steps=2,
  )
  assert r.returncode == 0, r.stderr[-2000:]
  assert os.listdir(os.path.join(work, "logs", "train")), "no TensorBoard summaries (the pictures)"


@pytest.mark.slow
def test_ctrl_c_during_training_is_one_line_and_the_same_command_resumes(data_root, tmp_path):
  """SIGINT (Ctrl-C) once a backup exists: exit 130 with one line saying how to resume (a 57-line KeyboardInterrupt
  traceback before), and the same command finishes the run."""
  work = str(tmp_path / "run")
  cmd = _cmd(data_root, work, epochs=2, steps=6, backup_every=1)
  meta = os.path.join(work, "backup", "current", "training_metadata.json")
  # The default SIGINT handling a terminal gives (a pytest-xdist worker ignores SIGINT, and a child inherits that).
  proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
  deadline = time.time() + 300
  while proc.poll() is None and not os.path.exists(meta) and time.time() < deadline:
    time.sleep(0.05)
  proc.send_signal(signal.SIGINT)
  _, err = proc.communicate(timeout=120)
  assert proc.returncode == 130, err[-3000:]
  assert "Traceback" not in err and err.strip().splitlines()[-1] == (
    f"interrupted: {work} keeps its last backup; run the same command again to resume from it"
  ), err[-3000:]
  r = subprocess.run(cmd, capture_output=True, text=True)
  assert r.returncode == 0, r.stderr[-3000:]
  assert _finite_file(os.path.join(work, "checkpoints", "final.keras"))


def test_a_work_dir_that_cannot_be_used_and_an_annotation_file_as_detections_are_one_line(tmp_path):
  (tmp_path / "afile").write_text("")
  r = run_script("scripts/train.py", "--gin_file=demo.gin", f"--work_dir={tmp_path / 'afile'}")
  assert r.returncode == 2 and r.stderr.strip() == f"error: --work_dir {tmp_path / 'afile'} is a file, not a folder"
  ro = tmp_path / "ro"
  ro.mkdir()
  if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(ro)], capture_output=True).returncode:
    pytest.skip("cannot mount a read-only tmpfs here (the file case above ran)")
  try:
    r = run_script("scripts/train.py", "--gin_file=demo.gin", f"--work_dir={ro / 'run'}")
    assert (
      r.returncode == 2 and r.stderr.strip() == f"error: --work_dir {ro / 'run'} cannot be used: Read-only file system"
    )
  finally:
    subprocess.run(["umount", "-l", str(ro)], capture_output=True)
  image = shared_path("coco_mini", "val2017", sorted(os.listdir(shared_path("coco_mini", "val2017")))[0])
  ann = shared_path("coco_mini", "annotations", "person_keypoints_val2017.json")
  r = run_script("scripts/predict.py", "--model", str(tmp_path / "x.keras"), "--image", image, "--detections", ann,
                 "--image_id", "1", "--out", str(tmp_path / "p"))  # fmt: skip
  assert r.returncode == 2 and "is not a detection file (COCO results format" in r.stderr.strip().splitlines()[-1]


def test_an_empty_lock_file_left_by_a_kill_is_replaced_not_blamed_on_pid_none(tmp_path, capsys):
  from semipose_tf.train.recovery import WorkDirLock

  work = tmp_path / "run"
  work.mkdir()
  lock = work / ".lock"
  lock.write_text("")
  os.utime(lock, (time.time() - 60, time.time() - 60))  # Left a minute ago by a run killed as it started.
  with WorkDirLock(str(work)):
    assert json.load(open(lock))["pid"] == os.getpid()
  assert "which names no run" in capsys.readouterr().out
