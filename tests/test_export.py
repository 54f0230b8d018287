"""SavedModel export: same keypoints as the Python path, documented signatures, bad and oversized input; predict."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from conftest import run_script, shared_path

from semipose_tf import codec, export
from semipose_tf.conversion import convert, sources
from semipose_tf.data import pipeline
from semipose_tf.keypoints import COCO17
from semipose_tf.models import build_pose_model


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
  import keras

  keras.utils.set_random_seed(0)
  net = build_pose_model("resnet18", (128, 96), 17)
  net.keypoint_spec = COCO17  # What train() attaches: the spec travels into the SavedModel.
  final = net.get_layer("final").get_layer("final_conv")  # Non-trivial heatmaps from an untrained head.
  final.kernel.assign(np.random.default_rng(0).normal(0, 0.05, final.kernel.shape).astype(np.float32))
  final.bias.assign(np.full(final.bias.shape, 0.6, np.float32))  # Scores well above 0, so the drawing shows.
  path = str(tmp_path_factory.mktemp("export") / "pose" / "1")
  export.export_saved_model(net, path, max_pixels=5_000_000)
  return net, path


def _served_vs_evaluated(net, path, eval_dir, spec, size, raw_box, image_path):
  """Largest keypoint and score difference between the SavedModel, sent each person's raw box (what a user sends:
  the annotation's, not the converter's sanitized one), and the evaluation pipeline's decoded predictions."""
  serve = tf.saved_model.load(path).signatures["serving_default"]
  config = pipeline.PipelineConfig.of_size(size)
  worst_xy, worst_score, n = 0.0, 0.0, 0
  for batch in pipeline.eval_dataset(eval_dir, spec, 16, config):
    ref, ref_scores = codec.decode_to_image(net(batch["image"], training=False), batch["center"], batch["scale"])
    ids = [int(a) for a in batch["ann_id"].numpy()]
    images = tf.constant([open(image_path(i), "rb").read() for i in ids])
    out = serve(images=images, boxes=tf.constant(np.stack([raw_box(i) for i in ids]), tf.float32))
    worst_xy = max(worst_xy, float(np.abs(out["keypoints"].numpy() - ref.numpy()).max()))
    worst_score = max(worst_score, float(np.abs(out["scores"].numpy() - ref_scores.numpy()).max()))
    n += len(ids)
  return worst_xy, worst_score, n


def test_saved_model_matches_the_python_evaluation_path(exported, tmp_path):
  net, path = exported
  ann = shared_path("coco_mini", "annotations", "person_keypoints_val2017.json")
  src = sources.load_coco(ann, shared_path("coco_mini", "val2017"), COCO17)
  convert.convert(src, str(tmp_path), ("eval",), verbose=False)
  raw = {a["id"]: a["bbox"] for a in json.load(open(ann))["annotations"]}
  paths = {inst.ann_id: info.path for info, inst, has in src.items if has}
  worst_xy, worst_score, n = _served_vs_evaluated(
    net, path, str(tmp_path / "eval"), COCO17, (128, 96), raw.__getitem__, paths.__getitem__
  )
  assert n == src.stats["labeled_candidates"]
  assert worst_xy <= 1e-3 and worst_score <= 1e-5, (worst_xy, worst_score)


@pytest.mark.slow
def test_served_keypoints_are_the_evaluated_ones_on_real_lspet_photos(tmp_path):
  """LSPET: the user sends each person's box (the converter's default, around the annotated joints:
  ``lsp.joint_box``); the SavedModel's keypoints are the ones PCK scored, to a thousandth of a pixel, and so is the
  PCK computed from them (issue 21: they differed by up to 80 px)."""
  import scipy.io

  from semipose_tf.conversion import lsp
  from semipose_tf.evaluation import pck
  from semipose_tf.keypoints import LSP14

  joints = shared_path("lspet", "joints.mat")
  images = shared_path("lspet", "images")
  full = scipy.io.loadmat(joints)["joints"]
  small = str(tmp_path / "joints.mat")
  scipy.io.savemat(small, {"joints": full[:, :, :40]})  # LSPET's [14, 3, N]: its first 40 photos.
  _, test = lsp.split(small, images, 20, LSP14)
  xy, annotated, _ = lsp.load_joints(small)
  box_of = lambda i: lsp.joint_box(xy[i - 1], annotated[i - 1])  # noqa: E731  (image numbers are 1-based)
  convert.convert(test, str(tmp_path / "lsp"), ("eval",), verbose=False)
  eval_dir = str(tmp_path / "lsp" / "eval")
  import keras

  keras.utils.set_random_seed(1)
  net = build_pose_model("resnet18", (128, 128), 14, width=16, deconv_filters=(32, 32, 32))
  net.keypoint_spec = LSP14
  final = net.get_layer("final").get_layer("final_conv")
  final.kernel.assign(np.random.default_rng(1).normal(0, 0.05, final.kernel.shape).astype(np.float32))
  sm = export.export_saved_model(net, str(tmp_path / "sm" / "1"))
  sizes = {inst.ann_id: (info.path, info.width, info.height) for info, inst, _ in test.items}
  worst_xy, worst_score, n = _served_vs_evaluated(net, sm, eval_dir, LSP14, (128, 128), box_of, lambda i: sizes[i][0])
  assert n == 20 and worst_xy <= 1e-3 and worst_score <= 1e-5, (worst_xy, worst_score)
  # And the metric: PCK of the served keypoints == what the evaluator reports.
  config = pipeline.PipelineConfig.of_size((128, 128))
  evaluator = pck.PCKEvaluator(eval_dir, pipeline.eval_dataset(eval_dir, LSP14, 16, config), LSP14)
  reported = evaluator(lambda x: net(x, training=False))
  serve = tf.saved_model.load(sm).signatures["serving_default"]
  ids = sorted(sizes)
  out = serve(
    images=tf.constant([open(sizes[i][0], "rb").read() for i in ids]),
    boxes=tf.constant([box_of(i) for i in ids], tf.float32),
  )
  truth = np.stack([pck.set_ground_truth(eval_dir)[i] for i in ids])
  served = pck.pck(out["keypoints"].numpy(), truth[..., :2], truth[..., 2] > 0, LSP14)
  assert abs(served["PCK@0.2"] - reported["PCK@0.2"]) < 1e-9, (served, reported)


def test_the_pipeline_and_the_saved_model_crop_with_one_function(monkeypatch, tmp_path):
  """Both the evaluation pipeline and the exported model crop through codec.HeatmapCodec.eval_crop (one function, one
  geometry); the crops they give for the same image and box are the same pixels."""
  calls = []
  original = codec.HeatmapCodec.eval_crop

  def spy(self, image, box):
    calls.append(self)
    return original(self, image, box)

  monkeypatch.setattr(codec.HeatmapCodec, "eval_crop", spy)
  ann = shared_path("coco_mini", "annotations", "person_keypoints_val2017.json")
  src = sources.load_coco(ann, shared_path("coco_mini", "val2017"), COCO17)
  convert.convert(src, str(tmp_path), ("eval",), verbose=False)
  config = pipeline.PipelineConfig.of_size((128, 96))
  batch = next(iter(pipeline.eval_dataset(str(tmp_path / "eval"), COCO17, 4, config)))
  assert calls and calls[-1] == config.codec
  calls.clear()
  net = build_pose_model("resnet18", (128, 96), 17, width=8, deconv_filters=(16, 16, 16))
  by_ann = {inst.ann_id: (info, inst) for info, inst, has in src.items if has}
  raw = {a["id"]: a["bbox"] for a in json.load(open(ann))["annotations"]}  # The user's boxes, not the stored ones.
  ids = [int(a) for a in batch["ann_id"].numpy()]
  images = tf.constant([open(by_ann[i][0].path, "rb").read() for i in ids])
  boxes = tf.constant([raw[i] for i in ids], tf.float32)
  crops, center, scale = export.PoseInference(net).crops(images, boxes)
  assert calls and calls[-1] == config.codec  # The same geometry object, read from the network.
  np.testing.assert_array_equal(crops.numpy(), batch["image"].numpy())
  np.testing.assert_array_equal(center.numpy(), batch["center"].numpy())


def test_saved_model_cli_lists_the_documented_signatures(exported):
  _, path = exported
  cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
  r = subprocess.run([cli, "show", "--dir", path, "--all"], capture_output=True, text=True)
  assert r.returncode == 0, r.stderr[-2000:]
  out = r.stdout
  for text in (
    "signature_def['serving_default']",
    "inputs['images']",
    "inputs['boxes']",
    "outputs['keypoints']",
    "outputs['scores']",
    "signature_def['heatmaps']",
    "inputs['crops']",
    "outputs['heatmaps']",
  ):
    assert text in out, text


def _jpeg(h=40, w=30):
  return tf.io.encode_jpeg(np.zeros((h, w, 3), np.uint8)).numpy()


def test_bad_bytes_and_decompression_bombs_are_refused(exported):
  _, path = exported
  serve = tf.saved_model.load(path).signatures["serving_default"]
  box = tf.constant([[1.0, 1.0, 10.0, 10.0]])
  for _ in range(10):  # The check, not the decoder, answers (no race between them).
    with pytest.raises(tf.errors.InvalidArgumentError, match="not a JPEG or PNG image"):
      serve(images=tf.constant([b"definitely not an image"]), boxes=box)
  # A PNG whose header claims 100000 x 100000 pixels: refused from the header, never decoded.
  png = bytearray(tf.io.encode_png(np.zeros((4, 4, 3), np.uint8)).numpy())
  png[16:24] = (100000).to_bytes(4, "big") + (100000).to_bytes(4, "big")
  # A JPEG whose frame header claims 60000 x 60000.
  jpg = bytearray(_jpeg())
  sof = jpg.find(b"\xff\xc0")
  jpg[sof + 5 : sof + 9] = (60000).to_bytes(2, "big") + (60000).to_bytes(2, "big")
  for _ in range(10):  # Every time: the check runs before the decoder, never after it.
    for bomb in (bytes(png), bytes(jpg)):
      with pytest.raises(tf.errors.InvalidArgumentError, match="image too large"):
        serve(images=tf.constant([bomb]), boxes=box)
  ok = serve(images=tf.constant([_jpeg()]), boxes=box)  # The server is still fine.
  assert ok["keypoints"].shape == (1, 17, 2)


def test_pixel_limit_is_configurable(tmp_path):
  net = build_pose_model("resnet18", (64, 64), 17)
  path = export.export_saved_model(net, str(tmp_path / "small" / "1"), max_pixels=1000)
  serve = tf.saved_model.load(path).signatures["serving_default"]
  with pytest.raises(tf.errors.InvalidArgumentError, match="image too large"):
    serve(images=tf.constant([_jpeg(40, 30)]), boxes=tf.constant([[0.0, 0.0, 30.0, 40.0]]))
  assert serve(images=tf.constant([_jpeg(20, 20)]), boxes=tf.constant([[0.0, 0.0, 20.0, 20.0]]))["scores"].shape == (
    1,
    17,
  )


@pytest.mark.parametrize(
  "bad,match",
  [
    ([float("nan"), 1.0, 10.0, 10.0], "box 1 is not finite"),
    ([1.0, float("inf"), 10.0, 10.0], "box 1 is not finite"),
    ([1.0, 1.0, 0.0, 10.0], "box 1 has no positive width and height"),
    ([5.0, 5.0, -3.0, 10.0], "box 1 has no positive width and height"),
    ([1e6, 1e6, 50.0, 50.0], "box 1 lies outside its"),
    ([-100.0, 2.0, 50.0, 10.0], "box 1 lies outside its"),
  ],
)
def test_bad_boxes_are_refused_with_their_index(exported, bad, match):
  _, path = exported
  serve = tf.saved_model.load(path).signatures["serving_default"]
  good = [1.0, 1.0, 20.0, 20.0]
  with pytest.raises(tf.errors.InvalidArgumentError, match=match):
    serve(images=tf.constant([_jpeg()] * 2), boxes=tf.constant([good, bad], tf.float32))
  ok = serve(images=tf.constant([_jpeg()]), boxes=tf.constant([good]))  # The next good request is answered.
  assert np.isfinite(ok["keypoints"].numpy()).all()


def test_an_empty_request_gets_empty_answers(exported):
  _, path = exported
  serve = tf.saved_model.load(path).signatures["serving_default"]
  out = serve(images=tf.zeros([0], tf.string), boxes=tf.zeros([0, 4], tf.float32))
  assert out["keypoints"].shape == (0, 17, 2) and out["scores"].shape == (0, 17)


def test_heatmaps_signature(exported):
  net, path = exported
  crops = tf.random.normal((2, 128, 96, 3))
  out = tf.saved_model.load(path).signatures["heatmaps"](crops=crops)["heatmaps"]
  np.testing.assert_allclose(out.numpy(), net(crops, training=False).numpy(), atol=1e-5)


@pytest.mark.slow
def test_predict_script_writes_json_and_a_drawn_png(exported, tmp_path):
  net, path = exported
  image = shared_path("samples", "coco", "000000000785.jpg")
  det = shared_path("samples", "coco", "test_coco_det_AP_H_56.json")
  ckpt = str(tmp_path / "net.keras")
  net.save(ckpt)
  for model in (ckpt, path):  # A checkpoint and the exported SavedModel.
    out = str(tmp_path / os.path.basename(model))
    r = run_script(
      "scripts/predict.py",
      "--model",
      model,
      "--image",
      image,
      "--detections",
      det,
      "--image_id",
      "785",
      "--out",
      out,
      "--threshold",
      "0",
    )  # In this process (conftest.run_script).
    assert r.returncode == 0, r.stderr[-2000:]
    result = json.load(open(out + ".json"))
    assert result["people"] and len(result["people"][0]["keypoints"]) == 17
    drawn = tf.io.decode_png(tf.io.read_file(out + ".png")).numpy()
    original = tf.io.decode_jpeg(tf.io.read_file(image)).numpy()
    assert drawn.shape == original.shape and np.abs(drawn.astype(int) - original).sum() > 0  # Something drawn.
  r = run_script("scripts/predict.py", "--model", ckpt, "--image", image, "--boxes", "1,2,0,5")
  assert r.returncode == 2 and "box 0 has no positive width and height" in r.stderr
  # A wrong --spec is refused before anything is written, naming both sides.
  out = str(tmp_path / "wrong")
  r = run_script("scripts/predict.py", "--model", path, "--image", image, "--spec", "aic14", "--out", out)
  assert r.returncode == 2 and "'aic14' (14 keypoints)" in r.stderr and "'coco17' (17 keypoints)" in r.stderr
  assert not os.path.exists(out + ".json") and not os.path.exists(out + ".png")


def test_the_spec_travels_into_the_saved_model(exported, tmp_path):
  net, path = exported
  keypoints_fn, spec = export.load_inference(path)
  assert spec == COCO17
  ckpt = str(tmp_path / "net.keras")
  net.save(ckpt)
  assert export.load_inference(ckpt)[1] == COCO17
  bare = build_pose_model("resnet18", (64, 64), 17, width=16, deconv_filters=(16,))
  bare_path = str(tmp_path / "bare" / "1")
  export.export_saved_model(bare, bare_path)
  assert export.load_inference(bare_path)[1] is None  # Nothing invented for a network without a spec.
