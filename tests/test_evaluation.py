"""COCO OKS AP and MPII PCKh: against pycocotools and the published reference, flip test, the callback."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from conftest import shared_path

from semipose_tf import codec, keypoints
from semipose_tf.augment.affine import NONE
from semipose_tf.conversion import convert, sources
from semipose_tf.data import pipeline
from semipose_tf.evaluation import coco, inference, mpii
from semipose_tf.keypoints import COCO17


def _gt_persons(ann_file, noise=0.0, seed=0):
  """Ground-truth keypoints as predictions (score 1 where labeled), optionally with pixel noise."""
  rng = np.random.default_rng(seed)
  d = json.load(open(ann_file))
  persons = []
  for a in d["annotations"]:
    if a["iscrowd"] or a["num_keypoints"] == 0:
      continue
    k = np.asarray(a["keypoints"], np.float64).reshape(17, 3)
    kp = np.concatenate([k[:, :2] + rng.normal(0, noise, (17, 2)), (k[:, 2:] > 0).astype(np.float64)], 1)
    persons.append({"image_id": a["image_id"], "keypoints": kp, "box_score": 1.0, "area": a["bbox"][2] * a["bbox"][3]})
  return persons


def test_ground_truth_as_predictions_gives_ap_one():
  ann = shared_path("coco_mini", "annotations", "person_keypoints_val2017.json")
  results = coco.rescore_and_nms(_gt_persons(ann), COCO17.sigmas)
  stats = coco.coco_eval(ann, results)
  assert stats["AP"] == pytest.approx(1.0) and stats["AR"] == pytest.approx(1.0)


def test_perturbed_predictions_match_pycocotools_directly(tmp_path):
  from pycocotools.coco import COCO
  from pycocotools.cocoeval import COCOeval

  ann = shared_path("coco_mini", "annotations", "person_keypoints_val2017.json")
  results = coco.rescore_and_nms(_gt_persons(ann, noise=4.0), COCO17.sigmas)
  path = str(tmp_path / "results.json")
  json.dump(results, open(path, "w"))
  ours = coco.coco_eval(ann, path)
  gt = COCO(ann)
  ev = COCOeval(gt, gt.loadRes(path), iouType="keypoints")  # loadRes accepts our file.
  ev.evaluate()
  ev.accumulate()
  ev.summarize()
  np.testing.assert_allclose([ours[n] for n in coco.STAT_NAMES], ev.stats, atol=1e-12)
  assert 0.2 < ours["AP"] < 0.99


def test_oks_nms_suppresses_duplicates():
  a = {"image_id": 1, "keypoints": np.tile([[50.0, 60.0, 0.9]], (17, 1)), "box_score": 1.0, "area": 4000.0}
  near = {**a, "keypoints": a["keypoints"] + [0.5, 0.5, -0.1]}
  far = {**a, "keypoints": a["keypoints"] + [80.0, 0.0, 0.0]}
  results = coco.rescore_and_nms([a, near, far], COCO17.sigmas)
  assert len(results) == 2 and results[0]["score"] == pytest.approx(0.9)


def test_mpii_reference_pckh():
  gt_file = shared_path("mpii_eval", "gt_valid.mat")
  gt = mpii.load_ground_truth(gt_file)
  preds = np.transpose(gt["pos_pred_src"], [2, 0, 1])
  expected = {
    "Head": 95.60,
    "Shoulder": 92.71,
    "Elbow": 83.36,
    "Wrist": 76.74,
    "Hip": 81.93,
    "Knee": 73.36,
    "Ankle": 65.45,
    "Mean": 82.34,
  }  # ../shared/data/README.md
  result = mpii.pckh(preds, gt_file, one_based=True)
  for k, v in expected.items():
    assert round(result[k], 2) == v, (k, result[k])
  zero_based = mpii.pckh(preds - 1.0, gt_file, one_based=False)
  assert zero_based == result
  print(mpii.format_table(result))


def test_mpii_prediction_files(tmp_path):
  gt_file = shared_path("mpii_eval", "gt_valid.mat")
  preds = np.transpose(mpii.load_ground_truth(gt_file)["pos_pred_src"], [2, 0, 1])
  import h5py
  from scipy.io import savemat

  np.save(tmp_path / "p.npy", preds)
  savemat(tmp_path / "p.mat", {"preds": preds})
  with h5py.File(tmp_path / "p.h5", "w") as f:
    f["preds"] = preds
  for name in ("p.npy", "p.mat", "p.h5"):
    np.testing.assert_allclose(mpii.load_predictions(str(tmp_path / name)), preds)
  with pytest.raises(ValueError, match=r"shape \[2958, 16, 2\]"):
    mpii.pckh(preds[:10], gt_file)
  visible = np.argwhere(1 - mpii.load_ground_truth(gt_file)["jnt_missing"].T)[5]
  broken = preds.copy()
  broken[visible[0], visible[1]] = np.nan
  with pytest.raises(ValueError, match=f"person {visible[0]} .*joint {visible[1]} is not finite"):
    mpii.pckh(broken, gt_file, one_based=True)


def _dot_image(h=64, w=48):
  """A left/right symmetric image: a centre dot, and three pairs of dots mirrored about the vertical axis."""
  img = np.zeros((h, w, 3), np.float32)
  img[10, (w - 1) // 2 : (w - 1) // 2 + 2, 0] = 1.0  # Centre (x = 23.5 straddles the axis w/2 - 0.5).
  for y, x in ((20, 12), (36, 8), (50, 15)):
    img[y, x, 1] = img[y, w - 1 - x, 1] = 1.0
  return img


def _anatomical_net(images):
  """A fake network that labels a pair's dot on the image's right half as the left joint (a person facing the
  camera), the way a trained network does: mirror-equivariant with left/right swapped."""
  out = []
  for img in images.numpy():
    h, w = img.shape[:2]
    kps = np.zeros((17, 2), np.float32)
    vis = np.zeros(17, np.float32)
    ys, xs = np.nonzero(img[..., 1])
    rows = sorted(set(ys))
    for pair, y in zip(((5, 6), (11, 12), (15, 16)), rows):
      left_x, right_x = xs[ys == y].max(), xs[ys == y].min()
      kps[pair[0]], kps[pair[1]] = (left_x, y), (right_x, y)
      vis[list(pair)] = 1
    ys0, xs0 = np.nonzero(img[..., 0])
    kps[0], vis[0] = (xs0.mean(), ys0.mean()), 1
    out.append(codec.encode_heatmaps(kps, vis, (h, w), (h // 4, w // 4), subpixel=True)[0].numpy())
  return tf.constant(np.stack(out))


def test_flip_test_on_a_symmetric_input_agrees_with_the_plain_prediction():
  images = tf.constant(_dot_image()[None])
  plain = inference.predict_heatmaps(_anatomical_net, images)
  flipped_only = codec.flip_back(_anatomical_net(tf.reverse(images, axis=[2])), COCO17.flip_index)
  p, _ = codec.decode_heatmaps(plain)
  f, _ = codec.decode_heatmaps(flipped_only)
  used = [0, 5, 6, 11, 12, 15, 16]
  assert np.abs(p.numpy()[0, used] - f.numpy()[0, used]).max() <= 1.0
  # Without the swap, left and right would trade places: the pairs are several heatmap pixels apart.
  no_swap = codec.flip_back(_anatomical_net(tf.reverse(images, axis=[2])), np.arange(17))
  n, _ = codec.decode_heatmaps(no_swap)
  assert np.abs(n.numpy()[0, 5] - p.numpy()[0, 5]).max() > 2.0
  both = inference.predict_heatmaps(_anatomical_net, images, COCO17.flip_index)
  b, _ = codec.decode_heatmaps(both)
  assert np.abs(b.numpy()[0, used] - p.numpy()[0, used]).max() <= 1.0


def test_evaluator_end_to_end_with_perfect_heatmaps(tmp_path):
  """Eval crops of coco_mini val and heatmaps that encode the ground truth: the whole chain (crop, decode back to
  the image, rescoring, NMS, COCOeval) gives a high AP, limited only by heatmap quantization."""
  ann = shared_path("coco_mini", "annotations", "person_keypoints_val2017.json")
  src = sources.load_coco(ann, shared_path("coco_mini", "val2017"), COCO17)
  convert.convert(src, str(tmp_path), ("eval",), verbose=False)
  config = pipeline.PipelineConfig.of_size((256, 192), augment=NONE)
  targets = iter(
    pipeline.labeled_dataset(
      str(tmp_path / "eval"), COCO17, 16, config, shuffle=False, repeat=False, drop_remainder=False
    )
  )
  perfect = lambda images: next(targets)["heatmaps"]  # noqa: E731 (same order as the eval dataset)
  evaluator = coco.COCOEvaluator(
    ann,
    pipeline.eval_dataset(str(tmp_path / "eval"), COCO17, 16, config),
    COCO17,
    results_file=str(tmp_path / "res.json"),
  )
  stats = evaluator(perfect)
  assert stats["AP"] > 0.8, stats
  assert len(json.load(open(tmp_path / "res.json"))) == src.stats["labeled_candidates"]


@pytest.mark.slow
def test_coco_evaluation_callback_during_training(synthetic_coco, tmp_path):
  from tiny_nets import tiny_model_fn

  from semipose_tf.evaluation.callback import coco_eval_callback
  from semipose_tf.train import config, experiment

  ann, images = synthetic_coco
  src = sources.load_coco(ann, images, COCO17)
  convert.convert(src, str(tmp_path / "data"), ("labeled", "unlabeled", "eval"), num_labeled=6, verbose=False)
  cb = coco_eval_callback("eval", data_root=str(tmp_path / "data"), batch_size=8)
  work = str(tmp_path / "work")
  data = config.DataConfig(
    str(tmp_path / "data" / "labeled"),
    str(tmp_path / "data" / "unlabeled"),
    input_size=(64, 64),
    labeled_batch_size=2,
    unlabeled_batch_size=2,
  )
  fit = config.FitConfig(epochs=2, steps_per_epoch=2, checkpoint_monitor="val_AP", checkpoint_mode="max", verbose=0)
  history = experiment.train(work, data, fit=fit, model_fn=tiny_model_fn, extra_callbacks=[cb])
  assert len(history.history["val_AP"]) == 2 and 0.0 <= history.history["val_AP"][-1] <= 1.0
  assert set(cb.last) == set(coco.STAT_NAMES) | {"PCK@0.2"}  # PCK of the same predictions (ground-truth boxes).
  assert 0.0 <= cb.last["PCK@0.2"] <= 100.0
  assert os.path.exists(os.path.join(work, "checkpoints", "best.keras"))


def test_evaluation_at_start_only_before_the_first_step():
  import keras

  from semipose_tf.evaluation.callback import EvaluationCallback

  calls = []

  def evaluator(predict):
    calls.append(float(np.asarray(predict(np.ones((1, 4), np.float32))).sum()))
    return {"AP": 0.25 * len(calls)}

  model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, kernel_initializer="ones")])
  model.compile(optimizer="sgd", loss="mse")
  model.optimizer.build(model.trainable_variables)
  cb = EvaluationCallback(lambda spec: evaluator, at_start=True)
  cb.set_model(model)
  cb.on_train_begin()
  assert cb.initial == {"AP": 0.25} and calls == [4.0]  # The untrained network, evaluated once.
  model.optimizer.iterations.assign(7)  # A resumed run: its network is not the untrained one; no "before" line.
  cb2 = EvaluationCallback(lambda spec: evaluator, at_start=True)
  cb2.set_model(model)
  cb2.on_train_begin()
  assert cb2.initial == {} and len(calls) == 1
  logs = {}
  cb2.set_params({"epochs": 1})
  cb2.on_epoch_end(0, logs)
  assert logs == {"val_AP": 0.5}


def _run_evaluate(*args):
  from conftest import run_script

  return run_script("scripts/evaluate.py", *args)  # In this process.


@pytest.mark.slow
def test_evaluate_script_scores_files_made_elsewhere(tmp_path):
  ann = shared_path("coco_mini", "annotations", "person_keypoints_val2017.json")
  path = str(tmp_path / "res.json")
  json.dump(coco.rescore_and_nms(_gt_persons(ann, noise=2.0), COCO17.sigmas), open(path, "w"))
  r = _run_evaluate("coco", "--results", path, "--annotations", ann)
  assert r.returncode == 0, r.stderr
  expected = coco.coco_eval(ann, path)
  assert f"{expected['AP']:.4f}" in r.stdout
  gt_file = shared_path("mpii_eval", "gt_valid.mat")
  preds = np.transpose(mpii.load_ground_truth(gt_file)["pos_pred_src"], [2, 0, 1])
  np.save(tmp_path / "p.npy", preds - 1.0)  # 0-based, as Python code writes them.
  r = _run_evaluate("mpii", "--predictions", str(tmp_path / "p.npy"), "--gt", gt_file)
  assert r.returncode == 0 and "| 95.60 | 92.71 | 83.36 | 76.74 | 81.93 | 73.36 | 65.45 | 82.34 |" in r.stdout
  r = _run_evaluate("mpii", "--predictions", str(tmp_path / "missing.npy"), "--gt", gt_file)
  assert r.returncode == 2 and "predictions not found" in r.stderr


@pytest.mark.slow
def test_evaluate_script_with_a_checkpoint_and_detection_boxes(tmp_path):
  from semipose_tf.models import build_pose_model

  det = shared_path("samples", "coco", "test_coco_det_AP_H_56.json")
  images = shared_path("samples", "coco")
  src = sources.load_detections(det, images, COCO17, score_threshold=0.3)
  convert.convert(src, str(tmp_path), ("eval",), verbose=False)
  ckpt = str(tmp_path / "net.keras")
  build_pose_model("resnet18", (64, 64), 17).save(ckpt)
  r = _run_evaluate(
    "coco",
    "--checkpoint",
    ckpt,
    "--eval_dir",
    str(tmp_path / "eval"),
    "--annotations",
    os.path.join(images, "test_coco.json"),
    "--flip_test",
    "--results_out",
    str(tmp_path / "o.json"),
  )
  assert r.returncode == 0, r.stderr[-2000:]
  assert "| AP | AP50 |" in r.stdout
  results = json.load(open(tmp_path / "o.json"))
  assert results and {x["image_id"] for x in results} <= {d["image_id"] for d in json.load(open(det))}


def test_an_evaluator_registered_by_name_is_what_the_callbacks_and_the_contract_use(tmp_path, monkeypatch):
  """One contract: a kind makes ``evaluator(predict) -> {metric}`` for a request (the set, the network's spec and
  input size); a registered name is found by the training callbacks like the built-in ones."""
  from semipose_tf.evaluation import registry
  from semipose_tf.evaluation.callback import EvaluationCallback, evaluation_callback
  from semipose_tf.models import build_pose_model

  monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
  assert {"coco", "pck", "lsp", "mpii", "probe"} <= set(registry.evaluators())
  det = shared_path("samples", "coco", "test_coco_det_AP_H_56.json")
  src = sources.load_detections(det, shared_path("samples", "coco"), COCO17, score_threshold=0.3)
  convert.convert(src, str(tmp_path), ("eval",), verbose=False)

  class Counting:  # Counts the crops and the heatmap channels it is given.
    names = ("people", "channels")

    def __init__(self, request):
      self.request = request

    def __call__(self, predict):
      shapes = [predict(b["image"]).shape for b in self.request.crops()]
      return {"people": float(sum(s[0] for s in shapes)), "channels": float(shapes[0][-1])}

  kind = registry.EvaluatorKind(Counting, lambda r: f"| people | {r['people']:.0f} |", prefix="count_")
  registry.register_evaluator("count", kind)
  with pytest.raises(ValueError, match="registered already"):
    registry.register_evaluator("count", kind)
  with pytest.raises(ValueError, match="unknown evaluator 'counting'; choose from"):
    evaluation_callback("counting", str(tmp_path / "eval"))
  net = build_pose_model("resnet18", (64, 64), 17, width=8, deconv_filters=(16, 16, 16))
  callback = evaluation_callback("count", "eval", data_root=str(tmp_path), batch_size=4)
  assert isinstance(callback, EvaluationCallback) and callback.data_dirs == (str(tmp_path / "eval"),)
  callback.set_model(net)
  logs = {}
  callback.on_epoch_end(0, logs)
  people = pipeline.num_instances(str(tmp_path / "eval"))
  assert logs == {"count_people": float(people), "count_channels": 17.0} and callback.names == (
    "count_people",
    "count_channels",
  )


def test_mpii_evaluator_runs_a_model_over_an_eval_set(tmp_path):
  """Mechanics on the MPII sample (5 people; gt_valid.mat has 2958, so the numbers mean nothing here): the
  predictions land at their annotation index, the rest stay (0, 0), PCKh comes back for every group."""
  from tiny_nets import TinyPoseNet

  from semipose_tf.evaluation.mpii import MPIIEvaluator
  from semipose_tf.keypoints import MPII16

  gt_file = shared_path("mpii_eval", "gt_valid.mat")
  src = sources.load_mpii(shared_path("samples", "mpii", "test_mpii.json"), shared_path("samples", "mpii"), MPII16)
  convert.convert(src, str(tmp_path), ("eval",), verbose=False)
  net = TinyPoseNet(16, (64, 64, 3))
  data = pipeline.eval_dataset(str(tmp_path / "eval"), MPII16, 4, pipeline.PipelineConfig.of_size((64, 64)))
  result = MPIIEvaluator(gt_file, data, MPII16, flip_test=True)(lambda x: net(x, training=False))
  assert set(result) >= {"Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Mean"}
  assert 0.0 <= result["Mean"] < 5.0  # 5 of 2958 people predicted at most.


def _subset_annotations(ann_file, keep, out):
  """The COCO json with only the keypoints ``keep`` (a 14-joint layout made from real COCO labels)."""
  d = json.load(open(ann_file))
  for a in d["annotations"]:
    k = np.asarray(a["keypoints"]).reshape(17, 3)[keep]
    a["keypoints"] = [float(v) for v in k.ravel()]
    a["num_keypoints"] = int((k[:, 2] > 0).sum())
  json.dump(d, open(out, "w"))
  return out


def test_fourteen_joint_ap_with_the_specs_own_sigmas_matches_pycocotools(tmp_path):
  """COCO AP of another layout uses that layout's sigmas: equal to pycocotools run directly with them."""
  from pycocotools.coco import COCO
  from pycocotools.cocoeval import COCOeval

  keep = [0] + list(range(5, 17)) + [3]  # 14 joints: nose, the 12 limb joints, the left ear.
  ann = _subset_annotations(
    shared_path("coco_mini", "annotations", "person_keypoints_val2017.json"), keep, str(tmp_path / "ann14.json")
  )
  sigmas = np.linspace(0.03, 0.11, 14)
  rng = np.random.default_rng(1)
  results = []
  for a in json.load(open(ann))["annotations"]:
    if a["iscrowd"] or a["num_keypoints"] == 0:
      continue
    k = np.asarray(a["keypoints"], np.float64).reshape(14, 3)
    k[:, :2] += rng.normal(0, 4.0, (14, 2))
    k[:, 2] = 1.0
    results.append({"image_id": a["image_id"], "category_id": 1, "keypoints": k.ravel().tolist(), "score": 1.0})
  path = str(tmp_path / "res14.json")
  json.dump(results, open(path, "w"))
  ours = coco.coco_eval(ann, path, sigmas)
  gt = COCO(ann)
  ev = COCOeval(gt, gt.loadRes(path), iouType="keypoints")
  ev.params.kpt_oks_sigmas = sigmas
  ev.evaluate()
  ev.accumulate()
  ev.summarize()
  np.testing.assert_allclose([ours[n] for n in coco.STAT_NAMES], ev.stats, atol=1e-12)
  assert 0.2 < ours["AP"] < 0.99
  with pytest.raises(ValueError, match="14 keypoints per person but 17 OKS sigmas"):
    coco.coco_eval(ann, path, COCO17.sigmas)
  with pytest.raises(ValueError, match="has no OKS sigmas"):
    coco.require_sigmas(keypoints.KeypointSpec(name="nosig", names=("a", "b")))


@pytest.mark.parametrize(
  "change,match",
  [
    (lambda r: r[3].update(keypoints=[float("nan")] * 51), r"entry 3 \(image_id \d+\): non-finite"),
    (lambda r: r[1].update(score=float("nan")), r"entry 1 \(image_id \d+\): non-finite"),
    (lambda r: r[0].update(keypoints=r[0]["keypoints"][:50]), r"entry 0 .*50 keypoint values, expected 51"),
    (lambda r: r[2].update(keypoints=r[2]["keypoints"] + [1.0, 2.0, 3.0]), "54 keypoint values, expected 51"),
    (lambda r: r[4].update(image_id=123456789), r"entry 4 \(image_id 123456789\): image_id is not in"),
    (lambda r: r.clear(), "no predictions to evaluate"),
    (lambda r: r[1].update(score="0.9"), r"entry 1 .*keypoints must be a flat list of numbers and score a number"),
    (lambda r: r[2].update(keypoints="1, 2, 3"), r"entry 2 .*keypoints must be a flat list of numbers"),
    (lambda r: r[2].update(keypoints=[r[2]["keypoints"]]), r"entry 2 .*keypoints must be a flat list of numbers"),
    (lambda r: [e.update(category_id=0) for e in r], r"entry 0 .*category_id 0 is not a category .* \(1\)"),
  ],
)
def test_bad_results_are_refused_with_the_entry_named(tmp_path, change, match):
  ann = shared_path("coco_mini", "annotations", "person_keypoints_val2017.json")
  results = coco.rescore_and_nms(_gt_persons(ann), COCO17.sigmas)
  change(results)
  path = str(tmp_path / "bad.json")
  json.dump(results, open(path, "w"))
  with pytest.raises(ValueError, match=match) as e:
    coco.coco_eval(ann, path)
  assert path in str(e.value)


def test_a_bbox_on_one_result_entry_is_ignored_and_no_annotated_person_is_an_error(tmp_path):
  """pycocotools took a "bbox" on the first entry as a box result (a KeyError on the others); keypoint AP reads the
  keypoints alone. An annotation file without an annotated person scored -1.0000 everywhere with exit 0."""
  ann = shared_path("coco_mini", "annotations", "person_keypoints_val2017.json")
  results = coco.rescore_and_nms(_gt_persons(ann), COCO17.sigmas)
  plain = coco.coco_eval(ann, results)
  results[0]["bbox"] = [1.0, 2.0, 30.0, 40.0]
  assert coco.coco_eval(ann, results) == plain
  d = json.load(open(ann))
  for a in d["annotations"]:
    a["keypoints"], a["num_keypoints"] = [0] * 51, 0
  empty = str(tmp_path / "no_people.json")
  json.dump(d, open(empty, "w"))
  with pytest.raises(ValueError, match="no_people.json: no person with annotated keypoints to score against"):
    coco.coco_eval(empty, results)


@pytest.mark.parametrize(
  "text,match", [("garbage", "not a JSON file"), ('{"a": 1}', "holds a dict"), ('[{"image_id": 1', "not a JSON file")]
)
def test_a_results_file_that_is_not_a_results_list_is_named(tmp_path, text, match):
  ann = shared_path("coco_mini", "annotations", "person_keypoints_val2017.json")
  path = str(tmp_path / "results.json")
  open(path, "w").write(text)
  with pytest.raises(ValueError, match=match) as e:
    coco.coco_eval(ann, path)
  assert str(e.value).startswith(path)


def test_mpii_predictions_in_any_unambiguous_axis_order(tmp_path):
  rng = np.random.default_rng(0)
  preds = rng.uniform(0, 500, (2958, 16, 2))
  for order in ([0, 1, 2], [1, 2, 0], [2, 1, 0], [0, 2, 1], [2, 0, 1]):  # [2, 16, 2958] is tompson.h5's.
    stored = np.transpose(preds, order)
    np.save(tmp_path / "p.npy", stored)
    np.testing.assert_array_equal(mpii.load_predictions(str(tmp_path / "p.npy")), preds)
  np.save(tmp_path / "amb.npy", rng.uniform(0, 1, (16, 16, 2)))  # 16 people: which axis is which?
  with pytest.raises(ValueError, match="cannot tell the axes"):
    mpii.load_predictions(str(tmp_path / "amb.npy"))


def test_coco_evaluator_pck_is_pck_of_its_own_predictions(tmp_path):
  """The PCK@0.2 the COCO evaluator reports beside AP is pck() of the same keypoints against the json's labels;
  detection boxes (people that are no annotation) get none."""
  from semipose_tf.evaluation import pck

  ann = shared_path("coco_mini", "annotations", "person_keypoints_val2017.json")
  labels = {
    a["id"]: np.asarray(a["keypoints"], np.float64).reshape(17, 3)
    for a in json.load(open(ann))["annotations"]
    if a.get("num_keypoints", 0) > 0
  }
  rng = np.random.default_rng(0)
  persons = [
    {"ann_id": i, "keypoints": np.concatenate([k[:, :2] + rng.normal(0, 4.0, (17, 2)), np.ones((17, 1))], 1)}
    for i, k in labels.items()
  ]
  evaluator = coco.COCOEvaluator(ann, None, COCO17)
  got = evaluator._pck(persons)
  gt = np.stack([labels[p["ann_id"]] for p in persons])
  expected = pck.pck(np.stack([p["keypoints"][:, :2] for p in persons]), gt[..., :2], gt[..., 2] > 0, COCO17)
  assert got == {"PCK@0.2": pytest.approx(expected["PCK@0.2"])} and 0 < got["PCK@0.2"] < 100
  assert evaluator._pck([{**persons[0], "ann_id": -1}]) == {}


def test_mpii_files_that_are_not_what_they_should_be_are_one_line(tmp_path):
  """--gt given another .mat or a text file, predictions in a 0-byte .npy: named (tracebacks before)."""
  from conftest import run_script
  from scipy.io import savemat

  gt = shared_path("mpii_eval", "gt_valid.mat")
  savemat(tmp_path / "other.mat", {"x": np.zeros(3)})
  (tmp_path / "notes.txt").write_text("hello")
  (tmp_path / "empty.npy").write_bytes(b"")
  for args, match in (
    (["--gt", str(tmp_path / "other.mat"), "--predictions", gt], "other.mat: no jnt_missing, pos_gt_src"),
    (["--gt", str(tmp_path / "notes.txt"), "--predictions", gt], "notes.txt: not a readable MATLAB file"),
    (["--gt", gt, "--predictions", str(tmp_path / "empty.npy")], "empty.npy: not a readable .npy file"),
  ):
    r = run_script("scripts/evaluate.py", "mpii", *args)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and match in r.stderr, r.stderr[-1500:]
