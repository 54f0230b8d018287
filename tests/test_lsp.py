"""LSP / LSPET: the converter's fixed split on real images, the PCK metric against an independent computation,
evaluate.py lsp, and the PCK callback's evaluator on a network."""

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from conftest import run_script, shared_path
from scipy.io import loadmat, savemat

from semipose_tf.conversion import lsp
from semipose_tf.data import pipeline, records
from semipose_tf.evaluation import pck
from semipose_tf.keypoints import LSP14


def _subset(tmp_path, count: int, extra_missing: int = 0, nan_at: int | None = None):
  """joints.mat of LSPET's first ``count`` images (+ ``extra_missing`` whose images do not exist), and an image
  folder linking to the real images."""
  joints = loadmat(shared_path("lspet", "joints.mat"))["joints"][:, :, : count + extra_missing].copy()
  if nan_at is not None:
    joints[0, 0, nan_at], joints[0, 2, nan_at] = np.nan, 1
  images = tmp_path / "images"
  images.mkdir()
  for i in range(1, count + 1):  # Copies: a link to a file outside --images is refused.
    shutil.copy(shared_path("lspet", "images", f"im{i:05d}.jpg"), images / f"im{i:05d}.jpg")
  savemat(tmp_path / "joints.mat", {"joints": joints})
  return str(tmp_path / "joints.mat"), str(images), joints


def _convert(*args):
  return run_script("scripts/make_tfrecords.py", "lsp", *args)  # In this process (conftest.run_script).


def _read(set_dir):
  paths, k, manifest = pipeline.open_set(set_dir, LSP14)
  out = []
  for rec in tf.data.TFRecordDataset(paths):
    ex = records.parse(rec, k)
    out.append(
      (
        int(ex["instance/id"][0]),
        ex["instance/bbox"][0].numpy(),
        ex["instance/keypoints"][0].numpy(),
        int(ex["image/width"]),
        int(ex["image/height"]),
      )
    )
  return out, manifest


def test_converter_split_on_real_images(tmp_path):
  joints_file, images, joints = _subset(tmp_path, 30)
  out = str(tmp_path / "out")
  r = _convert(
    "--joints",
    joints_file,
    "--images",
    images,
    "--out",
    out,
    "--num_labeled",
    "5",
    "--num_test",
    "10",
    "--box",
    "image",
  )
  assert r.returncode == 0, r.stderr[-2000:]
  labeled, m_l = _read(os.path.join(out, "labeled"))
  unlabeled, m_u = _read(os.path.join(out, "unlabeled"))
  test, m_e = _read(os.path.join(out, "eval"))
  assert [x[0] for x in labeled] == [1, 2, 3, 4, 5]  # The first 5 training images (1-based numbers).
  assert [x[0] for x in unlabeled] == list(range(1, 21))  # Every training image ...
  assert [x[0] for x in test] == list(range(21, 31))  # ... and the last 10 are the test set.
  assert m_u["labels"] == "removed from the records" and m_l["keypoint_spec"]["name"] == "lsp14"
  # The command that made the sets, so that an error about a corrupt shard can say how to rebuild it.
  assert (
    m_e["command"].startswith("python scripts/make_tfrecords.py lsp --joints") and "--num_test 10" in m_e["command"]
  )
  for number, box, kps, w, h in labeled + test:
    np.testing.assert_array_equal(box, [0, 0, w - 1, h - 1])  # The whole image, for every set (sanitized).
    flags = joints[:, 2, number - 1] > 0
    np.testing.assert_allclose(kps[flags, :2], joints[flags, :2, number - 1] - 1, atol=1e-4)
    assert (kps[flags, 2] == 2).all() and (kps[~flags] == 0).all()
  for number, box, kps, w, h in unlabeled:
    np.testing.assert_array_equal(box, [0, 0, w - 1, h - 1])
    assert not kps.any()  # No label reaches the unlabeled stream.


@pytest.mark.slow
def test_converter_bad_input_is_named_and_nothing_is_half_written(tmp_path):
  joints_file, images, _ = _subset(tmp_path, 12, extra_missing=2)
  out = str(tmp_path / "out")
  r = _convert("--joints", joints_file, "--images", images, "--out", out, "--num_test", "4")
  assert r.returncode == 2 and "annotation 13 (file" in r.stderr and "im00013.jpg): image file not found" in r.stderr
  assert not os.path.exists(out) or not any(f == "manifest.json" for _, _, fs in os.walk(out) for f in fs)
  r = _convert("--joints", joints_file, "--images", images, "--out", out, "--num_test", "4", "--skip_bad")
  assert r.returncode == 0, r.stderr[-2000:]
  assert json.load(open(os.path.join(out, "eval", "manifest.json")))["num_instances"] == 2
  (tmp_path / "nan").mkdir()
  joints_file, images, _ = _subset(tmp_path / "nan", 6, nan_at=2)
  r = _convert("--joints", joints_file, "--images", images, "--out", str(tmp_path / "o2"), "--num_test", "2")
  assert r.returncode == 2 and "annotation 3" in r.stderr and "non-finite" in r.stderr
  savemat(tmp_path / "wrong.mat", {"joints": np.zeros((16, 3, 5))})
  r = _convert("--joints", str(tmp_path / "wrong.mat"), "--images", images, "--out", str(tmp_path / "o3"))
  assert r.returncode == 2 and "wrong.mat" in r.stderr and "[14, 3, N]" in r.stderr


def test_person_boxes_around_the_annotated_joints_for_every_set(tmp_path):
  """The default box (--box joints): the annotated joints' extent x 1.2 + 8 px about its centre, sanitized as every
  converter's box, the same for the labeled, unlabeled and test sets; unlabeled records keep it, never the
  keypoints; the manifest records the rule; a person with no annotated joint gets the whole image and is counted."""
  joints_file, images, joints = _subset(tmp_path, 30)
  joints[:, 2, 3] = 0  # Image 4: no annotated joint.
  savemat(joints_file, {"joints": joints})
  out = str(tmp_path / "out")
  r = _convert("--joints", joints_file, "--images", images, "--out", out, "--num_labeled", "5", "--num_test", "10")
  assert r.returncode == 0, r.stderr[-2000:]
  labeled, m_l = _read(os.path.join(out, "labeled"))
  unlabeled, m_u = _read(os.path.join(out, "unlabeled"))
  test, m_e = _read(os.path.join(out, "eval"))
  stats = m_u["source"]["stats"]
  assert stats["box"] == "joints" and "extent x 1.2 + 8 px" in stats["box_rule"] and stats["whole_image_boxes"] == 1
  assert m_e["source"]["stats"]["whole_image_boxes"] == 0
  assert [x[0] for x in labeled] == [1, 2, 3, 5, 6]  # Image 4 has no label: not in the budget ...
  boxes = {}
  for number, box, kps, w, h in labeled + test + unlabeled:
    flags = joints[:, 2, number - 1] > 0
    if not flags.any():
      np.testing.assert_array_equal(box, [0, 0, w - 1, h - 1])  # ... but unlabeled, with the whole image.
      continue
    xy = joints[flags, :2, number - 1] - 1  # Independently: 0-based annotated joints.
    lo, hi = xy.min(0), xy.max(0)
    size = (hi - lo) * 1.2 + 8
    x1, y1 = max(0.0, (lo[0] + hi[0] - size[0]) / 2), max(0.0, (lo[1] + hi[1] - size[1]) / 2)
    x2, y2 = min(w - 1.0, x1 + size[0] - 1), min(h - 1.0, y1 + size[1] - 1)
    np.testing.assert_allclose(box, [x1, y1, x2 - x1, y2 - y1], atol=1e-3)
    assert box[2] < w - 1 or box[3] < h - 1  # A person box, not the image.
    assert boxes.setdefault(number, tuple(box)) == tuple(box)  # The same box in every set the person is in.
  assert all(not kps.any() for _, _, kps, _, _ in unlabeled)  # Boxes kept, keypoints never.
  # Serving sends the unsanitized box (lsp.joint_box), as COCO users send the annotation's bbox.
  from semipose_tf.codec import sanitize_box

  number, box, _, w, h = test[0]
  raw = lsp.joint_box(joints[:, :2, number - 1] - 1, joints[:, 2, number - 1] > 0)
  np.testing.assert_allclose(sanitize_box(*raw, w, h), box, atol=1e-3)
  assert lsp.joint_box(np.zeros((14, 2)), np.zeros(14, bool)) is None
  with pytest.raises(ValueError, match="box must be one of joints, image"):
    lsp.load_lsp(joints_file, images, box="person")


def _independent_pck(pred, gt, vis, threshold):
  """Per-person loops, written from the definition: torso = |left shoulder (9) - right hip (2)|."""
  correct = total = 0
  per_joint = np.zeros((2, 14))
  for p in range(len(gt)):
    if not (vis[p, 9] and vis[p, 2]):
      continue
    torso = np.hypot(*(gt[p, 9] - gt[p, 2]))
    for j in range(14):
      if vis[p, j]:
        ok = np.hypot(*(pred[p, j] - gt[p, j])) <= threshold * torso
        correct += ok
        total += 1
        per_joint[0, j] += ok
        per_joint[1, j] += 1
  return 100.0 * correct / total, per_joint


def test_pck_equals_an_independent_computation_on_real_people():
  xy, labeled, _ = lsp.load_joints(shared_path("lspet", "joints.mat"))
  gt, vis = xy[:60], labeled[:60]
  rng = np.random.default_rng(0)
  pred = gt + rng.normal(0, 6.0, gt.shape)
  pred[5, 3] = np.nan  # A non-annotated joint's prediction may be anything ...
  vis = vis.copy()
  vis[5, 3] = False
  result = pck.pck(pred, gt, vis, LSP14)
  assert result["people"] >= 20
  for t in (0.2, 0.1):
    expected, per_joint = _independent_pck(pred, gt, vis, t)
    assert result[f"PCK@{t:g}"] == pytest.approx(expected, abs=1e-9)
  _, per_joint = _independent_pck(pred, gt, vis, 0.2)
  assert result["Wrist"] == pytest.approx(100 * per_joint[0, [6, 11]].sum() / per_joint[1, [6, 11]].sum())
  assert result["Head"] == pytest.approx(100 * per_joint[0, [12, 13]].sum() / per_joint[1, [12, 13]].sum())
  assert 0 < result["PCK@0.1"] < result["PCK"] < 100
  assert pck.pck(gt, gt, vis, LSP14)["PCK"] == 100.0
  pred[6, 0] = np.nan  # ... an annotated one may not.
  vis[6, 0] = True
  with pytest.raises(ValueError, match="person 6, joint 'right_ankle' is not finite"):
    pck.pck(pred, gt, vis, LSP14)


def test_evaluate_script_scores_lsp_predictions_made_elsewhere(tmp_path):
  joints_file = shared_path("lspet", "joints.mat")
  joints = loadmat(joints_file)["joints"]
  test = joints[:, :, -1000:].copy()
  test[:, :2] += np.random.default_rng(1).normal(0, 5.0, test[:, :2].shape)
  savemat(tmp_path / "preds.mat", {"preds": test})  # joints.mat's layout, the test split only.
  r = run_script("scripts/evaluate.py", "lsp", "--predictions", str(tmp_path / "preds.mat"), "--joints", joints_file)
  assert r.returncode == 0, r.stderr[-2000:]
  xy, labeled, _ = lsp.load_joints(joints_file)
  expected = pck.pck(test[:, :2].transpose(2, 0, 1) - 1, xy[-1000:], labeled[-1000:], LSP14)
  assert f"{expected['PCK']:.2f}" in r.stdout and f"{expected['PCK@0.1']:.2f}" in r.stdout


@pytest.mark.slow
def test_pck_evaluator_and_script_on_a_network(tmp_path):
  import keras

  from semipose_tf.evaluation.callback import pck_eval_callback
  from semipose_tf.models import build_pose_model

  joints_file, images, _ = _subset(tmp_path, 16)
  out = str(tmp_path / "out")
  assert (
    _convert("--joints", joints_file, "--images", images, "--out", out, "--num_test", "8", "--sets", "eval").returncode
    == 0
  )
  keras.utils.set_random_seed(0)
  net = build_pose_model("resnet18", (64, 64), 14, width=8, deconv_filters=(16,))
  net.keypoint_spec = LSP14
  cb = pck_eval_callback(os.path.join(out, "eval"), batch_size=4)
  cb.set_model(net)
  cb.set_params({"epochs": 1})
  logs = {}
  cb.on_epoch_end(0, logs)
  assert {"val_PCK", "val_PCK@0.1", "val_Head", "val_Ankle"} <= set(logs)
  # The evaluator's number is pck() of its own predictions (nothing lost between the two).
  evaluator = cb.evaluator
  preds, gt, vis = evaluator.predictions(lambda x: net(x, training=False))
  assert preds.shape == (8, 14, 2) and logs["val_PCK"] == pytest.approx(pck.pck(preds, gt, vis, LSP14)["PCK"])
  ckpt = str(tmp_path / "net.keras")
  net.save(ckpt)
  r = run_script("scripts/evaluate.py", "lsp", "--checkpoint", ckpt, "--eval_dir", os.path.join(out, "eval"))
  assert r.returncode == 0, r.stderr[-2000:]
  assert f"{logs['val_PCK']:.2f}" in r.stdout.splitlines()[-1]
