"""The private Keras APIs this project relies on, each where no public API serves (the comment at each use says
why). If a Keras upgrade renames or changes one, these fail with a message that says which and where it is used."""

import inspect

import keras
import pytest

from semipose_tf.models import build_pose_model
from semipose_tf.train.distribute import set_synchronized_batch_norm


def _bn_layers(layer):
  """Every BatchNormalization under ``layer``, walked through the public ``.layers`` of each nested model."""
  found = []
  for child in getattr(layer, "layers", []):
    if isinstance(child, keras.layers.BatchNormalization):
      found.append(child)
    found += _bn_layers(child)
  return found


def test_flatten_layers_walks_every_nested_layer():
  assert hasattr(keras.Model, "_flatten_layers"), (
    "keras.Model._flatten_layers is gone: update semipose_tf/train/distribute.set_synchronized_batch_norm"
  )
  net = build_pose_model("resnet18", (64, 64), 5, width=8, deconv_filters=(16,))
  expected = {id(b) for b in _bn_layers(net)}
  assert len(expected) > 10
  assert set_synchronized_batch_norm(net) == len(expected)
  assert all(b.synchronized for b in _bn_layers(net))


def test_maybe_symbolic_build_keeps_its_signature():
  from keras.src.backend.tensorflow.trainer import TensorFlowTrainer

  method = getattr(TensorFlowTrainer, "_maybe_symbolic_build", None)
  assert method is not None, (
    "Keras no longer has _maybe_symbolic_build: update SemiSupervisedPose._maybe_symbolic_build (teacher_student)"
  )
  params = list(inspect.signature(method).parameters)
  assert params[:3] == ["self", "iterator", "data_batch"], params
  source = inspect.getsource(TensorFlowTrainer.fit)
  assert "_maybe_symbolic_build" in source, "fit no longer calls _maybe_symbolic_build: our override would be dead"


@pytest.mark.parametrize("name", ["_save_model", "on_train_begin", "on_epoch_end"])
def test_backup_and_restore_keeps_what_our_backup_overrides(name):
  assert callable(getattr(keras.callbacks.BackupAndRestore, name, None)), (
    f"BackupAndRestore.{name} is gone: update semipose_tf/train/recovery.Backup"
  )


def test_backup_and_restore_state_and_resume_epoch(tmp_path):
  from keras.src.backend.tensorflow.trainer import TensorFlowTrainer

  cb = keras.callbacks.BackupAndRestore(str(tmp_path), save_freq=1)
  for attr in ("_current_epoch", "_last_batch_seen"):
    assert hasattr(cb, attr), f"BackupAndRestore.{attr} is gone: update semipose_tf/train/recovery.Backup"
  assert "_initial_epoch" in inspect.getsource(TensorFlowTrainer.fit), (
    "fit no longer resumes from model._initial_epoch: update semipose_tf/train/recovery.Backup._load_from"
  )
