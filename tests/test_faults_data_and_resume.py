"""Faults, round two: corrupt records and edited manifests are named, a changed configuration never resumes
silently (issue 21)."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT
from training_data import make_layout

TINY = ["INPUT_SIZE = (64, 64)", "train.input_size = (64, 64)", "train.labeled_batch_size = 2",
        "train.unlabeled_batch_size = 2", "build_pose_model.pretrained = None", "build_pose_model.width = 8",
        "build_pose_model.deconv_filters = (16, 16, 16)", "train.extra_callbacks = []",
        'train.checkpoint_monitor = "val_heatmap_loss"', 'train.checkpoint_mode = "min"', "train.verbose = 2"]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
  return make_layout(str(tmp_path_factory.mktemp("data")))


@pytest.fixture
def data_root(pristine, tmp_path):
  """A private copy of the tiny data sets, free to damage."""
  root = str(tmp_path / "data")
  shutil.copytree(pristine, root)
  return root


def _train(data_root, work_dir, *params, flags=(), epochs=1, steps=2):
  cmd = [sys.executable, os.path.join(ROOT, "scripts", "train.py"), "--gin_file=coco_1k.gin", *flags,
         f"--data_root={data_root}", f"--work_dir={work_dir}",
         *[f"--gin_param={p}" for p in TINY + [f"train.epochs = {epochs}", f"train.steps_per_epoch = {steps}",
                                                 *params]]]
  return subprocess.run(cmd, capture_output=True, text=True)


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


def test_a_corrupt_labeled_shard_is_named_with_the_command_that_rebuilds_it(data_root, tmp_path):
  shard = _only_shard(os.path.join(data_root, "coco_1k", "labeled"))
  size = _flip_a_byte_in_the_middle(shard)
  assert os.path.getsize(shard) == size  # The manifest's size check still passes.
  r = _train(data_root, str(tmp_path / "run"), "train.method = 'supervised'")
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
  r = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "evaluate.py"), "lsp", "--checkpoint", ckpt,
                      "--eval_dir", eval_dir], capture_output=True, text=True)
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


def test_a_changed_configuration_is_refused_with_the_bindings_named(data_root, tmp_path):
  work = str(tmp_path / "run")
  r = _train(data_root, work, "train.method = 'supervised'")
  assert r.returncode == 0, r.stderr[-2000:]
  r = _train(data_root, work, "train.method = 'single'", "train.learning_rate = 0.01", epochs=2)
  assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr[-2000:]
  for change in ("train.method: 'supervised' -> 'single'", "train.learning_rate: 0.001 -> 0.01",
                 "train.epochs: 1 -> 2", "--allow_config_change"):
    assert change in r.stderr, (change, r.stderr)
  assert "supervised" in open(os.path.join(work, "config.gin")).read()  # Not rewritten.
  # Asked for explicitly: it resumes, and the old settings are kept beside the new ones.
  r = _train(data_root, work, "train.method = 'supervised'", epochs=2, flags=["--allow_config_change"])
  assert r.returncode == 0 and "Epoch 2/2" in r.stdout and "Epoch 1/2" not in r.stdout, r.stderr[-2000:]
  kept = [n for n in os.listdir(work) if n.startswith("config_before_")]
  assert len(kept) == 1 and "train.epochs = 1" in open(os.path.join(work, kept[0])).read()
  # A harmless change (how it reports) resumes without asking.
  r = _train(data_root, work, "train.method = 'supervised'", "train.verbose = 0", epochs=2)
  assert r.returncode == 0, r.stderr[-2000:]
