"""The method as one configuration: round trips, one-line errors, gin bindings reaching the step, and every
method preset (the oracles included) through ``train()`` for one tiny epoch with the real callbacks."""

import json
import os
import shutil

import gin
import numpy as np
import pytest
from training_data import make_lspet_layout

from semipose_tf.method_config import LossWeights, Masking, MethodConfig, Mixup, StrongView
from semipose_tf.train.methods import METHODS


def test_the_configuration_round_trips_through_plain_json():
  default = MethodConfig()
  other = MethodConfig(
    "dual",
    Masking(mask_max=10, fixed_count=7, half_size=(5, 9)),
    StrongView(rotation_prob=0.5),
    Mixup(lam=0.3, locations=("layer1",)),
    LossWeights(lambda_u=2.0, lambda_m=0.0),
    "inference",
  )
  for config in (default, other):
    text = json.dumps(config.get_config())  # Plain JSON: what method_config.json holds.
    again = MethodConfig.from_config(json.loads(text))
    assert again == config and again.get_config() == config.get_config()
  assert other != default and MethodConfig.from_config({"method": "single"}) == MethodConfig("single")


@pytest.mark.parametrize(
  "make,message",
  [
    (lambda: Masking(mask_min=9), "Masking.mask_min must be a whole number >= 1 and <= 8, got 9"),
    (lambda: Masking(gamma=0.0), "Masking.gamma must be a number > 0 and <= 1, got 0.0"),
    (lambda: Masking(fixed_count=9), "Masking.fixed_count must be a whole number between 1 and mask_max (8"),
    (lambda: Masking(half_size=(19, 10)), "Masking.half_size must be two whole numbers 0 < low <= high"),
    (lambda: StrongView(rotation_prob=1.5), "StrongView.rotation_prob must be a number >= 0 and <= 1, got 1.5"),
    (lambda: Mixup(alpha=0), "Mixup.alpha must be a number > 0, got 0"),
    (lambda: Mixup(locations=()), "Mixup.locations must be a non-empty list of split-point names"),
    (lambda: LossWeights(lambda_u=-1), "LossWeights.lambda_u must be a number >= 0, got -1"),
    (lambda: MethodConfig(teacher_bn_mode="eval"), "MethodConfig.teacher_bn_mode must be one of"),
    (lambda: MethodConfig.from_config({"masking": {"mask_maximum": 3}}), "Masking has no setting 'mask_maximum'"),
    (lambda: MethodConfig.from_config({"gamma": 0.5}), "MethodConfig has no setting 'gamma'"),
  ],
)
def test_impossible_settings_are_one_line_errors_naming_the_parameter(make, message):
  with pytest.raises(ValueError) as e:
    make()
  assert message in str(e.value) and "\n" not in str(e.value)


def test_gin_bindings_reach_the_step_and_the_work_directory(tmp_path):
  """`Masking.mask_max = 12` in a gin file is what the step counts with (its histogram has 13 bins)."""
  from training_data import make_layout

  from semipose_tf import configurable

  root = make_layout(str(tmp_path / "data"))
  gin.clear_config()
  try:
    configurable.parse_gin(
      ["coco_1k_m12.gin"],
      [
        f"DATA_ROOT = {root!r}",
        "DataConfig.input_size = (64, 64)",
        "build_pose_model.pretrained = None",
        "build_pose_model.width = 8",
        "DataConfig.labeled_batch_size = 4",  # The tiny sets hold 12 people: a batch of 32 is refused.
        "DataConfig.unlabeled_batch_size = 4",
      ],
    )
    exp = configurable.train(work_dir=str(tmp_path / "run"), dry_run=True)
  finally:
    gin.clear_config()
  config = exp.model.method_config
  assert config.method == "adaptive" and config.masking.mask_max == 12 and config.masking.gamma == 0.55
  assert exp.model.mask_count_bins.shape == (13,) and exp.model.get_config()["config"] == config.get_config()


@pytest.fixture(scope="session")
def lspet_root(tmp_path_factory):
  return make_lspet_layout(str(tmp_path_factory.mktemp("lspet")))


@pytest.mark.slow
@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_preset_trains_one_tiny_epoch_through_the_real_callbacks(method, lspet_root, tmp_path):
  """Checkpoints, TensorBoard with the pictures (which read the oracles' ground truth), history.csv, the PCK
  callback and the teacher probe (with the model's own Algorithm 1 settings) all see an epoch end."""
  import keras
  from tiny_nets import tiny_model_fn

  from semipose_tf.evaluation.callback import pck_eval_callback
  from semipose_tf.evaluation.teacher_probe import teacher_probe_callback
  from semipose_tf.method_config import MethodConfig
  from semipose_tf.train.config import DataConfig, FitConfig, OptimizerConfig
  from semipose_tf.train.experiment import train

  teacher = str(tmp_path / "teacher.keras")
  if method == "pseudopose":
    keras.utils.set_random_seed(1)
    tiny_model_fn((64, 64), 14).save(teacher)
  oracle = method.startswith("oracle_")
  work = str(tmp_path / "run")
  probe = teacher_probe_callback("labeled_all/labeled", lspet_root, first_id=2, num=4)
  train(
    work,
    DataConfig(
      "labeled_200/labeled",
      "labeled_all/labeled" if oracle else "unlabeled",
      data_root=lspet_root,
      spec="lsp14",
      input_size=(64, 64),
      labeled_batch_size=2,
      unlabeled_batch_size=2,
    ),
    MethodConfig(method=method),
    OptimizerConfig(lr_milestones=()),
    fit=FitConfig(
      epochs=1,
      steps_per_epoch=2,
      backup_every_steps=None,
      checkpoint_monitor="val_PCK",
      checkpoint_mode="max",
      log_every_steps=1,
      verbose=0,
    ),
    model_fn=tiny_model_fn,
    pseudopose_teacher=teacher,
    extra_callbacks=[pck_eval_callback("eval", lspet_root, batch_size=4), probe],
  )
  with open(os.path.join(work, "history.csv")) as f:
    header, row = f.read().splitlines()[:2]
  logged = dict(zip(header.split(","), row.split(",")))
  assert np.isfinite(float(logged["loss_s"])) and "val_PCK" in logged and "probe_mask_count" in logged
  assert os.path.exists(os.path.join(work, "checkpoints", "final.keras"))
  with open(os.path.join(work, "method_config.json")) as f:
    assert MethodConfig.from_config(json.load(f)) == MethodConfig(method)
  # The checkpoint carries it itself: a copy away from its work directory still knows its method.
  from semipose_tf.train.task import read_method_config

  alone = tmp_path / "alone" / "net.keras"
  alone.parent.mkdir()
  shutil.copyfile(os.path.join(work, "checkpoints", "final.keras"), alone)
  assert read_method_config(str(alone)) == MethodConfig(method)
  if METHODS[method].unlabeled:
    import tensorflow as tf

    files = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(work, "logs", "ssl")) for f in fs]
    tags = {v.tag for f in files for e in tf.compat.v1.train.summary_iterator(f) for v in e.summary.value}
    assert "weak | masked strong | mixed" in tags
