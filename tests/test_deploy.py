"""ONNX, LiteRT and OpenVINO artifacts: exported, reloaded in their own runtimes (onnxruntime, ai-edge-litert,
openvino) and compared with the Keras network on real photos; one predictor for every format (photo + boxes ->
the SavedModel's keypoints); scored by evaluate.py like the network; bad requests are one line and leave an earlier
artifact whole. Skipped, with the reason, only where the deploy extra is not installed."""

import hashlib
import json
import os
import sys

import numpy as np
import pytest
from conftest import run_benchmark, run_script, shared_path

EXTRA = "the deploy extra is not installed (pip install -e '.[deploy]')"
for _module in ("onnxruntime", "tf2onnx", "onnx", "ai_edge_litert", "openvino"):
  pytest.importorskip(_module, reason=EXTRA)

pytestmark = pytest.mark.slow  # Each export converts a whole network (10-20 s).

# (crop px, least share of joints within them of the Keras network's keypoints) per variant, on crops of real
# photos through a randomly initialized network (flat heatmaps: the hardest case for an argmax). float32 formats
# compute the same function; float16 weights move near-tied maxima to a neighbouring pixel; int8 activations
# quantize the heatmaps themselves, so int8 is held to one heatmap pixel (4 crop px) and its cost is measured as
# AP / PCK by benchmarks/export_formats.py.
WITHIN = {"float32": (0.05, 0.99), "float16": (0.05, 0.95), "int8": (4.0, 0.8)}


@pytest.fixture(scope="session")
def network_and_crops(coco_mini_sets):
  import keras

  from semipose_tf.data import pipeline
  from semipose_tf.keypoints import COCO17
  from semipose_tf.models import build_pose_model

  keras.utils.set_random_seed(0)
  net = build_pose_model("resnet18", (64, 64), 17, width=8, deconv_filters=(16, 16, 16))
  net.keypoint_spec = COCO17
  # SimpleBaseline's head starts at std 0.001, so a random network's heatmaps are of order 1e-8 (float16
  # underflows there); a trained one's peak near 1. He-scaled head weights give them a trained network's range.
  rng = np.random.default_rng(0)
  head = [layer for layer in net._flatten_layers() if isinstance(layer, keras.layers.Conv2DTranspose)]
  final = [layer for layer in net._flatten_layers() if isinstance(layer, keras.layers.Conv2D)][-1]
  for layer in head + [final]:
    kernel, *rest = layer.get_weights()
    fan_in = np.prod(kernel.shape[:2]) * (kernel.shape[3] if layer in head else kernel.shape[2])
    layer.set_weights([rng.normal(0, np.sqrt(2 / fan_in), kernel.shape).astype(np.float32), *rest])
  config = pipeline.PipelineConfig.of_size((64, 64))
  data = pipeline.eval_dataset(os.path.join(coco_mini_sets, "labeled"), COCO17, 16, config)
  crops = np.concatenate([b["image"].numpy() for b in data])[:32]  # Real people: coco_mini train photos.
  kernel, bias = final.get_weights()
  final.set_weights([kernel / float(np.abs(net(crops, training=False).numpy()).max()), bias])  # Peaks at 1.
  return net, crops


def _keras_keypoints(net, crops):
  from semipose_tf import codec

  heatmaps = net(crops, training=False)
  coords, _ = codec.decode_heatmaps(heatmaps)
  return heatmaps.numpy(), codec.HeatmapCodec.of_network(net).to_input(coords).numpy()


@pytest.mark.parametrize(
  "fmt,variant",
  [("onnx", "float32"), ("litert", "float32"), ("litert", "float16"), ("litert", "int8"), ("openvino", "float32")],
)
def test_an_artifact_in_its_own_runtime_gives_the_keras_networks_keypoints(
  network_and_crops, tmp_path, fmt, variant, monkeypatch, capfd
):
  from semipose_tf import codec, console, deploy

  monkeypatch.setattr(console, "_QUIET", True)  # As after a script's quiet start: native log lines hidden.
  net, crops = network_and_crops
  path = str(tmp_path / f"{fmt}_{variant}")
  representative = (lambda: (crops[i : i + 8] for i in range(0, 32, 8))) if variant == "int8" else None
  deploy.export_artifact(net, path, fmt, variant, representative)
  weights = ["model.bin"] if fmt == "openvino" else []  # OpenVINO's weights beside its graph.
  assert sorted(os.listdir(path)) == sorted(["deploy.json", "keypoint_spec.json", deploy.MODEL_FILES[fmt]] + weights)
  artifact = deploy.Artifact(path)
  assert artifact.spec.name == "coco17" and artifact.input_size == (64, 64)
  out = artifact(crops)
  want_heatmaps, want_keypoints = _keras_keypoints(net, crops)
  assert out["heatmaps"].shape == want_heatmaps.shape and out["keypoints"].shape == (32, 17, 2)
  if variant != "int8":  # int8 decodes its quantized heatmaps inside; the output is their float copy.
    # The decoding in the graph is the codec's, on the artifact's own heatmaps.
    coords, scores = codec.decode_heatmaps(out["heatmaps"])
    np.testing.assert_allclose(out["keypoints"], coords.numpy() * 4, atol=1e-4)
    np.testing.assert_allclose(out["scores"], scores.numpy(), rtol=1e-5, atol=1e-6)
  scale = np.abs(want_heatmaps).max()
  error = np.abs(out["heatmaps"] - want_heatmaps).max() / scale
  assert error < {"float32": 1e-5, "float16": 5e-3, "int8": 0.1}[variant], error
  tolerance, share = WITHIN[variant]
  within = (np.abs(out["keypoints"] - want_keypoints).max(-1) <= tolerance).mean()
  print(f"{fmt} {variant}: heatmap error {error:.3g} of the largest, {within:.1%} of joints within {tolerance} px")
  assert within >= share, within
  one = artifact(crops[:1])  # A batch of another size: the runtime resizes its input.
  np.testing.assert_allclose(one["heatmaps"], out["heatmaps"][:1], rtol=1e-4, atol=1e-6 * scale)
  # LiteRT's converter prints its int8 settings and its interpreter the delegate it made, from C++ (fd 2).
  native = capfd.readouterr().err
  assert "fully_quantize" not in native and "XNNPACK" not in native, native[-500:]


def _coco_mini_people(count: int):
  """(photo path, its people's boxes) for the first ``count`` coco_mini val photos with a person box."""
  ann = json.load(open(shared_path("coco_mini", "annotations", "person_keypoints_val2017.json")))
  boxes = {}
  for a in ann["annotations"]:
    boxes.setdefault(a["image_id"], []).append(a["bbox"])
  names = {i["id"]: i["file_name"] for i in ann["images"]}
  ids = sorted(boxes)[:count]
  return [(shared_path("coco_mini", "val2017", names[i]), boxes[i]) for i in ids]


def test_one_predictor_gives_the_saved_models_keypoints_in_every_format(
  network_and_crops, coco_mini_sets, tmp_path, monkeypatch
):
  """Photo + person boxes -> image keypoints through semipose_tf.predictor.Predictor for .keras, SavedModel, ONNX,
  LiteRT (float32 / float16 / int8) and OpenVINO, against the SavedModel's serving_default (the graph TF Serving
  runs) on real photos; and predict.py --model takes every one of them."""
  import tensorflow as tf

  from semipose_tf import console, deploy, export
  from semipose_tf.predictor import Predictor

  monkeypatch.setattr(console, "_QUIET", True)
  net, crops = network_and_crops
  paths = {"keras": str(tmp_path / "net.keras"), "saved_model": str(tmp_path / "saved_model" / "1")}
  net.save(paths["keras"])
  export.export_saved_model(net, paths["saved_model"])
  for fmt, variant in [("onnx", "float32"), ("openvino", "float32")] + [("litert", v) for v in deploy.LITERT_VARIANTS]:
    paths[f"{fmt} {variant}"] = str(tmp_path / f"{fmt}_{variant}")
    calibration = (lambda: (crops[i : i + 8] for i in range(0, 32, 8))) if variant == "int8" else None
    deploy.export_artifact(net, paths[f"{fmt} {variant}"], fmt, variant, calibration)
  serve = tf.saved_model.load(paths["saved_model"]).signatures["serving_default"]
  people = _coco_mini_people(12)
  predictors = {name: Predictor(path) for name, path in paths.items()}
  assert {p.format for p in predictors.values()} == {"keras", "saved_model", "onnx", "openvino", "litert"}
  worst = {name: [] for name in paths}
  for photo, boxes in people:
    data = open(photo, "rb").read()
    want = serve(images=tf.constant([data] * len(boxes)), boxes=tf.constant(boxes, tf.float32))
    want = {k: want[k].numpy() for k in ("keypoints", "scores")}
    # Image pixels per crop pixel of each box: the padded box's width over the input's 64.
    _, _, scale = predictors["keras"].crops(tf.io.decode_jpeg(data, channels=3).numpy(), np.float32(boxes))
    per_crop_px = scale[:, :1] * 200.0 / 64.0
    for name, predictor in predictors.items():
      got = predictor(photo, boxes)
      assert got["keypoints"].shape == want["keypoints"].shape == (len(boxes), 17, 2), name
      worst[name].append(np.abs(got["keypoints"] - want["keypoints"]).max(-1) / per_crop_px)
  report = {}
  for name, errors in worst.items():
    errors = np.concatenate([e.ravel() for e in errors])  # Crop pixels, one per joint.
    tolerance, share = WITHIN[name.split()[-1] if " " in name else "float32"]
    report[name] = (float(errors.max()), float((errors <= tolerance).mean()))
    if name in ("keras", "saved_model"):  # The same TensorFlow kernels on the same crops: identical.
      assert errors.max() == 0.0, (name, report[name])
    elif name.endswith("float32"):  # Another runtime's float rounding of the same function.
      assert errors.max() <= 1e-3, (name, report[name])
    else:
      assert report[name][1] >= share, (name, report[name])
  print(
    {
      name: f"max {worst:.3g} crop px, {share:.1%} of joints within the bound"
      for name, (worst, share) in report.items()
    }
  )
  # predict.py takes every format and writes its predictor's keypoints (to the JSON's two decimals).
  photo, boxes = people[0]
  for name, path in paths.items():
    want = predictors[name](photo, boxes)["keypoints"]
    out = str(tmp_path / "predict" / name.replace(" ", "_"))
    flat = ";".join(",".join(str(v) for v in b) for b in boxes)
    r = run_script("scripts/predict.py", "--model", path, "--image", photo, "--boxes", flat, "--out", out)
    assert r.returncode == 0, (name, r.stderr[-2000:])
    written = np.array([p["keypoints"] for p in json.load(open(out + ".json"))["people"]])
    assert np.abs(written - want).max() <= 0.005 + 1e-4, (name, np.abs(written - want).max())


def test_readmes_predictor_snippet_runs_as_written(network_and_crops, tmp_path, monkeypatch):
  """README's "Use a trained network" snippet, verbatim, where exports/pose_onnx is an ONNX export and photo.jpg a
  real photo with room for both of its boxes."""
  import re
  import shutil

  from semipose_tf import deploy

  readme = open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")).read()
  snippet = re.search(r"## Use a trained network.*?```python\n(.*?)```", readme, re.S).group(1)
  deploy.export_artifact(network_and_crops[0], str(tmp_path / "exports" / "pose_onnx"), "onnx")
  photo, _ = _coco_mini_people(1)[0]
  shutil.copy(photo, tmp_path / "photo.jpg")
  monkeypatch.chdir(tmp_path)
  scope = {}
  exec(compile(snippet, "README.md", "exec"), scope)
  assert scope["keypoints"].shape == (2, 17, 2) and scope["scores"].shape == (2, 17)
  # Inside the first box's padded crop, in image pixels: 210 x 1.25 = 262.5 px square about (99.5, 124.5).
  first = scope["keypoints"][0]
  assert (first.min(0) >= [99.5 - 132, 124.5 - 132]).all() and (first.max(0) <= [99.5 + 132, 124.5 + 132]).all()


def test_evaluate_scores_an_artifact_like_the_network(network_and_crops, coco_mini_sets, tmp_path):
  from semipose_tf import deploy

  net, _ = network_and_crops
  ckpt = str(tmp_path / "net.keras")
  net.save(ckpt)
  path = str(tmp_path / "onnx")
  deploy.export_artifact(net, path, "onnx")
  eval_dir = os.path.join(coco_mini_sets, "labeled")
  outputs = []
  for model in (ckpt, path):
    r = run_script("scripts/evaluate.py", "coco", "--artifact", model, "--eval_dir", eval_dir)
    assert r.returncode == 0, r.stderr[-2000:]
    outputs.append(r.stdout.strip().splitlines()[-1])
  assert outputs[0] == outputs[1]  # The same AP / AR table to four decimals.


def _digest(folder):
  h = hashlib.sha256()
  for d, _, files in sorted(os.walk(folder)):
    for f in sorted(files):
      h.update(open(os.path.join(d, f), "rb").read())
  return h.hexdigest()


def test_bad_export_requests_are_one_line_and_leave_an_earlier_artifact_whole(network_and_crops, tmp_path, monkeypatch):
  net, _ = network_and_crops
  ckpt = str(tmp_path / "net.keras")
  net.save(ckpt)
  export = ["scripts/export.py", ckpt]  # Run in this process (conftest.run_script).
  out = str(tmp_path / "pose_onnx")
  assert run_script(*export, out, "--format", "onnx").returncode == 0
  before = _digest(out)
  cases = [
    (export + [out, "--format", "onnx"], False, f"{out} exists: choose another output or pass --overwrite"),
    (export + [str(tmp_path / "x"), "--format", "tflite"], False, "unknown --format 'tflite'; choose from"),
    (export + [str(tmp_path / "x"), "--format", "onnx", "--variant", "int8"], False, "has no --variant 'int8'"),
    (
      export + [str(tmp_path / "x"), "--format", "litert", "--variant", "int8"],
      False,
      "--variant int8 needs --representative",
    ),
    (
      export + [str(tmp_path / "x"), "--format", "onnx"],
      True,
      "ONNX export needs the package 'tf2onnx': install the deploy extra (pip install -e '.[deploy]')",
    ),
  ]
  for cmd, blocked, message in cases:
    with monkeypatch.context() as m:
      if blocked:  # An environment without tf2onnx: its import fails, as where it is absent.
        m.setitem(sys.modules, "tf2onnx", None)
      r = run_script(*cmd)
    assert r.returncode == 2 and message in r.stderr, (cmd, r.stderr[-2000:])
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
  assert not os.path.exists(tmp_path / "x") and _digest(out) == before
  r = run_script(*export, out, "--format", "litert", "--overwrite")
  assert r.returncode == 0 and "litert (float32) written to" in r.stdout, r.stderr[-2000:]
  assert sorted(os.listdir(out)) == ["deploy.json", "keypoint_spec.json", "model.tflite"]


def test_an_export_request_is_checked_in_one_place_before_any_work(tmp_path):
  """deploy.check_request: the rules scripts/export.py applies before loading the network and export_artifact
  applies for library callers, with the flags' names on the command line and the arguments' names otherwise."""
  from semipose_tf import deploy

  new, old = str(tmp_path / "new"), str(tmp_path / "old")
  os.makedirs(old)
  for args, kwargs, error, message in [
    ((new, "tflite"), {}, ValueError, "unknown format 'tflite'; choose from saved_model, onnx, litert"),
    ((new, "tflite"), {"cli": True}, ValueError, "unknown --format 'tflite'"),
    ((new, "onnx", "int8"), {}, ValueError, "format onnx has no variant 'int8'; choose from float32"),
    ((new, "saved_model", "float16"), {"cli": True}, ValueError, "--format saved_model has no --variant 'float16'"),
    ((new, "litert", "int8"), {}, ValueError, "variant int8 needs representative crops to calibrate on"),
    ((new, "litert", "int8"), {"cli": True}, ValueError, "--variant int8 needs --representative <an evaluation"),
    ((old, "onnx"), {}, FileExistsError, f"{old} exists: choose another output or pass overwrite=True"),
    ((old, "litert"), {"cli": True}, FileExistsError, "or pass --overwrite (the old one stays"),
  ]:
    with pytest.raises(error) as e:
      deploy.check_request(*args, **kwargs)
    assert message in str(e.value), (args, kwargs, str(e.value))
  deploy.check_request(old, "litert", "int8", overwrite=True, representative=lambda: iter(()))  # A sound request.
  deploy.check_request(new, "saved_model")
  with pytest.raises(ValueError, match="export_saved_model"):
    deploy.export_artifact(None, new, "saved_model")
  assert not os.path.exists(new)  # Nothing was written for a refused request.


@pytest.mark.slow
def test_export_formats_benchmark_measures_every_format(network_and_crops, coco_mini_sets, tmp_path):
  """benchmarks/export_formats.py end to end on a small network: one row per format, each scored and timed."""
  net, _ = network_and_crops
  ckpt = str(tmp_path / "net.keras")
  net.save(ckpt)
  page = tmp_path / "formats.md"
  run_benchmark("export_formats.py", "--model", ckpt, "--eval_dir", os.path.join(coco_mini_sets, "labeled"),
                "--calibration", "8", "--repeats", "1", "--out", str(page), timeout=900)  # fmt: skip
  table = [line for line in page.read_text().splitlines() if line.startswith("| ") and "---" not in line][1:]
  titles = [line.split("|")[1].strip() for line in table]
  assert titles[:2] == ["Keras (.keras)", "SavedModel"] and "OpenVINO" in titles and len(titles) == 7, titles
  assert not any("nan" in line for line in table), table  # Every format scored, sized and timed.
