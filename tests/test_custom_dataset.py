"""The "Your own dataset" walkthrough of docs/data.md, end to end, on a tiny 5-keypoint dataset this test writes itself.

Conversion (make_tfrecords.py with the spec defined in gin), training (scripts/train.py with
gin_configs/examples/my_dataset.gin, shrunk to a few steps of a tiny network), COCO AP with the spec's sigmas through
the callback and through evaluate.py (no --spec: the checkpoint carries it), export, a serving call on the
SavedModel and predict.py's picture. Nothing here may fall back to COCO-17.
"""

import csv
import json
import os
import subprocess

import numpy as np
import pytest
import tensorflow as tf
from conftest import run_script

NAMES = ["head", "left_hand", "right_hand", "left_foot", "right_foot"]


def _write_dataset(root: str, num_images: int, seed: int) -> str:
  """COCO-format json + PNGs: one or two 'stars' per image (a head and four limbs drawn as dots), K = 5."""
  rng = np.random.default_rng(seed)
  images, annotations = [], []
  os.makedirs(os.path.join(root, "images"), exist_ok=True)
  for i in range(num_images):
    h, w = 120, 100
    canvas = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
    for j in range(1 + i % 2):
      cx, cy = rng.uniform(30, 70), rng.uniform(40, 80)
      kps = np.array([[cx, cy - 25], [cx + 15, cy], [cx - 15, cy], [cx + 10, cy + 25], [cx - 10, cy + 25]])
      for n, (x, y) in enumerate(kps):
        canvas[int(y) - 2 : int(y) + 3, int(x) - 2 : int(x) + 3] = (50 * n, 255 - 40 * n, 128)
      flat = np.concatenate([kps, np.full((5, 1), 2.0)], 1).ravel()
      box = [cx - 25, cy - 35, 50, 70]
      annotations.append(
        {
          "id": 100 * i + j,
          "image_id": i,
          "category_id": 1,
          "iscrowd": 0,
          "bbox": box,
          "area": box[2] * box[3],
          "num_keypoints": 5,
          "keypoints": [float(v) for v in flat],
        }
      )
    name = f"{seed}_{i:03d}.png"
    tf.io.write_file(os.path.join(root, "images", name), tf.io.encode_png(canvas))
    images.append({"id": i, "file_name": name, "width": w, "height": h})
  path = os.path.join(root, f"annotations_{seed}.json")
  json.dump(
    {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "person", "keypoints": NAMES}]},
    open(path, "w"),
  )
  return path


def _run(script: str, *args: str) -> subprocess.CompletedProcess:
  r = run_script(os.path.join("scripts", script), *args)  # In this process (conftest.run_script).
  assert r.returncode == 0, f"{script} failed:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
  return r


@pytest.mark.slow
def test_custom_layout_from_conversion_to_prediction(tmp_path):
  raw, data, work = str(tmp_path / "raw"), str(tmp_path / "data"), str(tmp_path / "work")
  train_json, val_json = _write_dataset(raw, 12, seed=0), _write_dataset(raw, 4, seed=1)
  spec_gin = ["--gin_file", "examples/my_dataset.gin", "--spec", "star5"]
  _run(
    "make_tfrecords.py",
    "coco",
    *spec_gin,
    "--annotations",
    train_json,
    "--images",
    os.path.join(raw, "images"),
    "--out",
    data,
    "--sets",
    "labeled,unlabeled",
    "--num_labeled",
    "8",
  )
  _run(
    "make_tfrecords.py",
    "coco",
    *spec_gin,
    "--annotations",
    val_json,
    "--images",
    os.path.join(raw, "images"),
    "--out",
    data,
    "--sets",
    "eval",
  )
  manifest = json.load(open(os.path.join(data, "eval", "manifest.json")))
  assert manifest["keypoint_spec"]["names"] == NAMES and len(manifest["keypoint_spec"]["sigmas"]) == 5

  tiny = [
    "INPUT_SIZE = (64, 64)",
    "build_pose_model.width = 8",
    "build_pose_model.deconv_filters = (16, 16, 16)",
    "DataConfig.labeled_batch_size = 2",
    "DataConfig.unlabeled_batch_size = 2",
    "FitConfig.epochs = 1",
    "FitConfig.steps_per_epoch = 3",
    "OptimizerConfig.lr_milestones = (5,)",
    "FitConfig.picture_count = 2",
  ]
  _run(
    "train.py",
    "--gin_file=examples/my_dataset.gin",
    f"--data_root={data}",
    f"--work_dir={work}",
    *[f"--gin_param={p}" for p in tiny],
  )
  rows = list(csv.DictReader(open(os.path.join(work, "history.csv"))))
  callback_ap = float(rows[-1]["val_AP"])  # The callback evaluated with star5 (17 COCO sigmas would fail).

  # evaluate.py takes the spec from the checkpoint: no --spec, and the same AP as the callback's.
  ckpt = os.path.join(work, "checkpoints", "final.keras")
  r = _run("evaluate.py", "coco", "--checkpoint", ckpt, "--eval_dir", os.path.join(data, "eval"))
  ap = float(r.stdout.strip().splitlines()[-1].split("|")[1])
  assert abs(ap - callback_ap) < 1e-4, (ap, callback_ap)

  # The SavedModel carries the spec and answers with K = 5.
  saved = os.path.join(work, "saved_model", "1")
  assert json.load(open(os.path.join(saved, "assets.extra", "keypoint_spec.json")))["names"] == NAMES
  serve = tf.saved_model.load(saved).signatures["serving_default"]
  image_bytes = tf.io.read_file(os.path.join(raw, "images", "1_000.png"))
  out = serve(images=tf.stack([image_bytes] * 2), boxes=tf.constant([[10, 10, 60, 90], [0, 0, 100, 120]], tf.float32))
  assert out["keypoints"].shape == (2, 5, 2) and out["scores"].shape == (2, 5)
  assert os.path.exists(os.path.join(work, "predictions.png"))

  # predict.py: the names from the model, a picture enlarged to a readable size.
  dest = str(tmp_path / "pred")
  _run("predict.py", "--model", saved, "--image", os.path.join(raw, "images", "1_000.png"), "--out", dest)
  result = json.load(open(dest + ".json"))
  assert result["keypoint_spec"] == "star5" and result["keypoint_names"] == NAMES
  assert len(result["people"][0]["keypoints"]) == 5
  picture = tf.io.decode_png(tf.io.read_file(dest + ".png")).numpy()
  assert max(picture.shape[:2]) >= 512
