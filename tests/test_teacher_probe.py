"""The teacher monitor on real LSPET people: pseudo-label PCK of a perfect and of a real network, mask counts by
annotated-joint difficulty, and the callback's logged names."""

import os

import numpy as np
import pytest
from test_lsp import _convert, _subset

from semipose_tf import codec
from semipose_tf.augment.cutout import adaptive_mask_count
from semipose_tf.evaluation import pck
from semipose_tf.evaluation.teacher_probe import TeacherProbe, count_vs_teacher, difficulty, teacher_probe_callback
from semipose_tf.keypoints import LSP14
from semipose_tf.method_config import Masking


def test_difficulty_groups():
  annotated = np.zeros((4, 14), bool)
  annotated[0] = True  # all 14
  annotated[1, :10] = True  # 10 of 14 (>= 70%)
  annotated[2, :9] = True  # 9 of 14
  assert difficulty(annotated).tolist() == [0, 1, 2, 2]


@pytest.fixture(scope="session")
def probe_set(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("probe")
  joints_file, images, joints = _subset(tmp, 24)
  out = str(tmp / "out")
  r = _convert("--joints", joints_file, "--images", images, "--out", out, "--num_test", "4", "--sets", "labeled")
  assert r.returncode == 0, r.stderr[-2000:]
  return os.path.join(out, "labeled"), joints


def _truth_heatmaps(probe: TeacherProbe, input_size):
  """Per probe batch, Gaussian heatmaps at the held-back ground truth: a teacher that is always right."""
  hm_size = (input_size[0] // 4, input_size[1] // 4)
  out = []
  for batch in probe.dataset:
    kps = np.stack([probe.truth[int(i)] for i in batch["ann_id"].numpy()])
    to_heatmap = codec.crop_affine(batch["center"], batch["scale"], 0.0, hm_size)
    xy = codec.apply_affine(to_heatmap, kps[..., :2]) * 4.0  # heatmap -> input pixels for the encoder
    heatmaps, _ = codec.encode_heatmaps(xy, (kps[..., 2] > 0).astype(np.float32), input_size, hm_size, subpixel=True)
    out.append(heatmaps)
  return out


def test_probe_skips_the_labeled_budget_and_a_right_teacher_scores_100(probe_set):
  set_dir, joints = probe_set
  probe = TeacherProbe(set_dir, LSP14, (256, 256), Masking(), first_id=6, num=10, batch_size=4)
  ids = [int(i) for b in probe.dataset for i in b["ann_id"].numpy()]
  assert ids == list(range(6, 16))  # Held-back people only (ids 1..5 are the "labels").
  queue = _truth_heatmaps(probe, (256, 256))
  result = probe(lambda images: queue.pop(0))
  # Decoding loses at most a quarter heatmap pixel: at 256x256 0.2 x torso is ~2 px, 0.1 x torso ~1 px.
  assert result["PCK@0.2"] == 100.0 and result["PCK@0.1"] > 95.0
  annotated = joints[:, 2, 5:15].T > 0  # LSPET flag per joint of images 6..15
  groups = difficulty(annotated)
  for g, name in enumerate(("all_joints", "most_joints", "few_joints")):
    assert result[f"people_{name}"] == (groups == g).sum()
  # A right teacher gets every person with a torso right: nobody on the "wrong" side, nothing to rank.
  has_torso = annotated[:, 9] & annotated[:, 2]
  assert result["people_teacher_right"] == has_torso.sum() and result["people_teacher_wrong"] == 0
  assert np.isnan(result["mask_count_teacher_wrong"]) and np.isnan(result["mask_count_rank_corr"])


def test_count_vs_teacher_by_hand():
  correct = np.zeros((5, 4), bool)
  scored = np.ones((5, 4), bool)
  scored[4] = False  # No torso: left out.
  correct[1] = True  # 4 of 4 right
  correct[2, :2] = True  # 2 of 4
  correct[3, :1] = True  # 1 of 4; person 0: none
  out = count_vs_teacher(np.array([2, 8, 5, 3, 7]), correct, scored)
  assert out["people_teacher_right"] == 2 and out["mask_count_teacher_right"] == 6.5  # persons 1, 2
  assert out["people_teacher_wrong"] == 2 and out["mask_count_teacher_wrong"] == 2.5  # persons 0, 3
  assert out["mask_count_rank_corr"] == pytest.approx(1.0)  # same order
  flipped = count_vs_teacher(np.array([8, 2, 3, 5, 7]), correct, scored)
  assert flipped["mask_count_rank_corr"] == pytest.approx(-1.0)


def test_probe_numbers_are_pck_and_algorithm_1_of_the_networks_heatmaps(probe_set):
  import keras

  from semipose_tf.models import build_pose_model

  set_dir, _ = probe_set
  keras.utils.set_random_seed(0)
  net = build_pose_model("resnet18", (64, 64), 14, width=8, deconv_filters=(16,))
  net.keypoint_spec = LSP14
  cb = teacher_probe_callback(set_dir, first_id=6, num=10)
  cb.set_model(net)
  cb.set_params({"epochs": 1})
  logs = {}
  cb.on_epoch_end(0, logs)
  assert {"probe_PCK@0.2", "probe_PCK@0.1", "probe_mask_count", "probe_mask_count_all_joints"} <= set(logs)
  probe = cb.evaluator
  heatmaps = [net(b["image"], training=False) for b in probe.dataset]
  counts = np.concatenate([adaptive_mask_count(h, Masking()).numpy() for h in heatmaps])
  assert logs["probe_mask_count"] == pytest.approx(counts.mean())
  coords = np.concatenate(
    [codec.decode_to_image(h, b["center"], b["scale"])[0].numpy() for h, b in zip(heatmaps, probe.dataset)]
  )
  truth = np.stack([probe.truth[int(i)] for b in probe.dataset for i in b["ann_id"].numpy()])
  expected = pck.pck(coords, truth[..., :2], truth[..., 2] > 0, LSP14)
  assert logs["probe_PCK@0.2"] == pytest.approx(expected["PCK@0.2"], abs=1e-4)
  correct, scored = pck.correct_joints(coords, truth[..., :2], truth[..., 2] > 0, LSP14)
  people = scored.any(-1)
  right = correct[people].sum(-1) >= 0.5 * scored[people].sum(-1)
  assert logs["probe_people_teacher_right"] + logs["probe_people_teacher_wrong"] == people.sum()
  assert logs["probe_people_teacher_wrong"] == (~right).sum()
  if (~right).any():
    assert logs["probe_mask_count_teacher_wrong"] == pytest.approx(counts[people][~right].mean())


@pytest.mark.slow
def test_evaluate_script_runs_the_probe_on_a_checkpoint(probe_set, tmp_path):
  import keras
  from conftest import run_script

  from semipose_tf.models import build_pose_model

  keras.utils.set_random_seed(0)
  net = build_pose_model("resnet18", (64, 64), 14, width=8, deconv_filters=(16,))
  net.keypoint_spec = LSP14
  ckpt = str(tmp_path / "net.keras")
  net.save(ckpt)
  r = run_script(
    "scripts/evaluate.py", "probe", "--checkpoint", ckpt, "--eval_dir", probe_set[0], "--first_id", "6", "--num", "10"
  )
  assert r.returncode == 0, r.stderr[-2000:]
  rows = dict(line.strip("| ").split(" | ") for line in r.stdout.splitlines()[2:])
  probe = TeacherProbe(probe_set[0], LSP14, (64, 64), Masking(), first_id=6, num=10)
  expected = probe(lambda x: net(x, training=False))
  assert float(rows["PCK@0.2"]) == pytest.approx(expected["PCK@0.2"], rel=1e-3)
  assert float(rows["people_teacher_right"]) + float(rows["people_teacher_wrong"]) == pytest.approx(
    expected["people_teacher_right"] + expected["people_teacher_wrong"]
  )


def test_a_probe_that_finds_nobody_is_refused(probe_set):
  with pytest.raises(ValueError, match="no person with instance id >= 999"):
    TeacherProbe(probe_set[0], LSP14, (64, 64), Masking(), first_id=999)


def test_comparison_sheet_puts_networks_side_by_side(probe_set):
  import keras

  from semipose_tf.evaluation.pictures import comparison_sheet
  from semipose_tf.models import build_pose_model

  set_dir, _ = probe_set
  keras.utils.set_random_seed(0)
  nets = {name: build_pose_model("resnet18", (64, 64), 14, width=8, deconv_filters=(16,)) for name in ("a", "b")}
  sheet, titles = comparison_sheet(
    {k: (lambda x, n=n: n(x, training=False)) for k, n in nets.items()}, set_dir, LSP14, (64, 64), [7, 3], min_size=300
  )
  assert titles == ["ground truth", "a", "b"]
  assert sheet.dtype == np.uint8 and sheet.shape[1] >= 3 * 300 and sheet.shape[0] >= 2 * 300
  third = sheet.shape[1] // 3
  assert not np.array_equal(sheet[:, :third], sheet[:, third : 2 * third])  # Drawn skeletons differ.


def test_the_probe_counts_masks_with_the_trained_models_own_settings(probe_set):
  """Algorithm 1's settings come from the model being trained (its MethodConfig), not from defaults of the probe:
  with mask_max 4 no count exceeds 4, and the probe holds the very same Masking."""
  import keras

  from semipose_tf.method_config import MethodConfig
  from semipose_tf.models import build_pose_model
  from semipose_tf.train.teacher_student import SemiSupervisedPose

  set_dir, _ = probe_set
  keras.utils.set_random_seed(0)
  net = build_pose_model("resnet18", (64, 64), 14, width=8, deconv_filters=(16,))
  net.keypoint_spec = LSP14
  masking = Masking(mask_max=4, mask_min=1, fixed_count=4, gamma=0.9)
  model = SemiSupervisedPose(net, MethodConfig("adaptive", masking=masking))
  cb = teacher_probe_callback(set_dir, first_id=6, num=10)
  cb.set_model(model)
  cb.set_params({"epochs": 1})
  logs = {}
  cb.on_epoch_end(0, logs)
  assert cb.evaluator.masking is masking and cb.evaluator.dataset.element_spec["image"].shape[1:3] == (64, 64)
  assert 1 <= logs["probe_mask_count"] <= 4
