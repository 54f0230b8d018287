import json
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from conftest import ROOT, run_script, shared_path

from semipose_tf.conversion import convert, sources
from semipose_tf.data import records
from semipose_tf.keypoints import COCO17


def _count_coco(ann_file):
  """Eligible persons counted independently: non-crowd, >= 1 labeled keypoint, box inside the image."""
  d = json.load(open(ann_file))
  size = {im["id"]: (im["width"], im["height"]) for im in d["images"]}
  n = 0
  for a in d["annotations"]:
    w, h = size[a["image_id"]]
    x, y, bw, bh = a["bbox"]
    x2, y2 = min(w - 1, max(0, x) + max(0, bw - 1)), min(h - 1, max(0, y) + max(0, bh - 1))
    if (
      not a.get("iscrowd", 0)
      and max(a["keypoints"]) > 0
      and a.get("area", bw * bh) > 0
      and x2 >= max(0, x)
      and y2 >= max(0, y)
    ):
      n += 1
  return n


def _run_script(*args, check=True):
  r = run_script("scripts/make_tfrecords.py", *args, cwd=ROOT)  # In this process (conftest.run_script).
  if check and r.returncode != 0:
    raise AssertionError(r.stdout + r.stderr)
  return r


@pytest.mark.parametrize("split", ["train2017", "val2017"])
def test_coco_mini_counts_and_storage(tmp_path, split):
  ann = shared_path("coco_mini", "annotations", f"person_keypoints_{split}.json")
  images = shared_path("coco_mini", split)
  _run_script(
    "coco",
    "--annotations",
    ann,
    "--images",
    images,
    "--out",
    str(tmp_path),
    "--sets",
    "labeled,unlabeled,eval",
    "--num_labeled",
    "20",
  )
  expected = _count_coco(ann)
  for set_name, n in (("labeled", 20), ("unlabeled", expected), ("eval", expected)):
    d = str(tmp_path / set_name)
    m = records.read_manifest(d)
    assert m["num_instances"] == n
    assert records.count_instances(records.shard_paths(d, m), 17) == n  # Read back from the shards.
    assert m["record_bytes"] <= 1.1 * m["source_image_bytes"]
    assert m["keypoint_spec"]["name"] == "coco17"
  m = records.read_manifest(str(tmp_path / "unlabeled"))
  d = json.load(open(ann))
  assert m["source"]["stats"]["crowd"] == sum(a["iscrowd"] for a in d["annotations"])
  assert m["source"]["stats"]["zero_keypoints"] == sum(
    1 for a in d["annotations"] if not a["iscrowd"] and max(a["keypoints"]) == 0
  )
  lab = records.read_manifest(str(tmp_path / "labeled"))
  assert lab["split"] == {"mode": "first", "num_labeled": 20, "seed": None}


def test_labeled_split_first_and_random(synthetic_coco):
  ann, images = synthetic_coco
  src = sources.load_coco(ann, images, COCO17)
  first = convert.select_labeled(src, 5, "first")
  order = [i for i, it in enumerate(src.items) if it[2]]
  assert first == order[:5]
  r1 = convert.select_labeled(src, 5, "random", seed=1)
  assert r1 == convert.select_labeled(src, 5, "random", seed=1) and r1 != first and len(set(r1)) == 5
  assert r1 != convert.select_labeled(src, 5, "random", seed=2)


def test_mpii_sample(tmp_path):
  ann = shared_path("samples", "mpii", "test_mpii.json")
  _run_script("mpii", "--annotations", ann, "--images", shared_path("samples", "mpii"), "--out", str(tmp_path))
  data = json.load(open(ann))
  expected = sum(1 for a in data if max(a["joints_vis"]) > 0)
  m = records.read_manifest(str(tmp_path / "labeled"))
  assert m["num_instances"] == expected and m["keypoint_spec"]["name"] == "mpii16"
  # The stored box gives back the reference's centre and scale (c[1] += 15 s; s *= 1.25; 1-based -> 0-based).
  rec = next(iter(tf.data.TFRecordDataset(records.shard_paths(str(tmp_path / "labeled")))))
  ex = records.parse(rec, 16)
  from semipose_tf import codec

  c, s = codec.box_to_center_scale(ex["instance/bbox"], 1.0)
  name = ex["image/filename"].numpy().decode()
  a = [a for a in data if a["image"] == name][0]
  np.testing.assert_allclose(c.numpy()[0], [a["center"][0] - 1, a["center"][1] + 15 * a["scale"] - 1], atol=1e-3)
  np.testing.assert_allclose(s.numpy()[0], [a["scale"] * 1.25] * 2, rtol=1e-5)
  j = np.array(a["joints"]) - 1
  kps = ex["instance/keypoints"].numpy()[0]
  vis = np.array(a["joints_vis"]) > 0
  np.testing.assert_allclose(kps[vis, :2], j[vis], atol=1e-3)


def test_aic_sample(tmp_path):
  ann = shared_path("samples", "aic", "test_aic.json")
  _run_script(
    "aic",
    "--annotations",
    ann,
    "--images",
    shared_path("samples", "aic"),
    "--out",
    str(tmp_path),
    "--sets",
    "labeled,unlabeled",
  )
  m = records.read_manifest(str(tmp_path / "unlabeled"))
  assert m["num_instances"] == _count_coco(ann) and m["keypoint_spec"]["name"] == "aic14"


def test_detections_sample(tmp_path):
  det = shared_path("samples", "coco", "test_coco_det_AP_H_56.json")
  images = shared_path("samples", "coco")
  _run_script("detections", "--detections", det, "--images", images, "--out", str(tmp_path), "--score_threshold", "0.3")
  dets = json.load(open(det))
  m = records.read_manifest(str(tmp_path / "unlabeled"))
  expected = sum(
    1
    for d in dets
    if d["score"] >= 0.3 and d.get("category_id", 1) == 1 and sources.clean_box(d["bbox"], 10**6, 10**6) is not None
  )
  assert m["num_instances"] == expected and m["labels"] == "ignored"


# --- Bad input -----------------------------------------------------------------------------------------------


@pytest.fixture
def bad_copy(tmp_path, synthetic_coco):
  """A writable copy of the synthetic dataset, to break."""
  ann, images = synthetic_coco
  img_dir = tmp_path / "images"
  shutil.copytree(images, img_dir)
  data = json.load(open(ann))
  return data, str(img_dir), str(tmp_path / "ann.json"), str(tmp_path / "out")


def _write(data, path):
  with open(path, "w") as f:
    json.dump(data, f)


def _first_ann(data):
  a = data["annotations"][0]
  im = [i for i in data["images"] if i["id"] == a["image_id"]][0]
  return a, im


def test_missing_image(bad_copy):
  data, img_dir, ann_file, out = bad_copy
  a, im = _first_ann(data)
  os.remove(os.path.join(img_dir, im["file_name"]))
  _write(data, ann_file)
  r = _run_script("coco", "--annotations", ann_file, "--images", img_dir, "--out", out, check=False)
  assert r.returncode == 2
  assert f"annotation {a['id']}" in r.stderr and im["file_name"] in r.stderr and "not found" in r.stderr
  assert not os.path.exists(os.path.join(out, "labeled", "manifest.json"))
  r = _run_script("coco", "--annotations", ann_file, "--images", img_dir, "--out", out, "--skip_bad")
  m = records.read_manifest(os.path.join(out, "unlabeled"))
  n_bad = sum(1 for x in data["annotations"] if x["image_id"] == im["id"])
  assert m["source"]["stats"]["bad"] == n_bad
  assert {p["ann_id"] for p in m["source"]["skipped_annotations"]} == {
    x["id"] for x in data["annotations"] if x["image_id"] == im["id"]
  }
  assert m["num_instances"] == len(data["annotations"]) - n_bad


def test_undecodable_jpeg(bad_copy):
  data, img_dir, ann_file, out = bad_copy
  a, im = _first_ann(data)
  with open(os.path.join(img_dir, im["file_name"]), "wb") as f:
    f.write(b"\xff\xd8\xff\xe0 this is not a jpeg")
  _write(data, ann_file)
  r = _run_script("coco", "--annotations", ann_file, "--images", img_dir, "--out", out, check=False)
  assert r.returncode == 2 and f"annotation {a['id']}" in r.stderr and "not a decodable image" in r.stderr
  assert im["file_name"] in r.stderr
  _run_script("coco", "--annotations", ann_file, "--images", img_dir, "--out", out, "--skip_bad", "--num_labeled", "3")
  lab = records.read_manifest(os.path.join(out, "labeled"))
  assert lab["num_instances"] == 3  # The split passed over the bad image and still holds the budget.
  unl = records.read_manifest(os.path.join(out, "unlabeled"))
  assert {p["ann_id"] for p in unl["skipped"]} == {x["id"] for x in data["annotations"] if x["image_id"] == im["id"]}


def test_wrong_keypoint_length(bad_copy):
  data, img_dir, ann_file, out = bad_copy
  data["annotations"][1]["keypoints"] = data["annotations"][1]["keypoints"][:-3]
  _write(data, ann_file)
  with pytest.raises(
    sources.BadInputError,
    match=rf"annotation {data['annotations'][1]['id']} .*48 keypoint "
    r"values, expected 51",
  ):
    sources.load_coco(ann_file, img_dir, COCO17)
  src = sources.load_coco(ann_file, img_dir, COCO17, skip_bad=True)
  assert src.stats["bad"] == 1 and src.problems[0].ann_id == data["annotations"][1]["id"]


def test_box_outside_image(bad_copy):
  data, img_dir, ann_file, out = bad_copy
  a, im = _first_ann(data)
  a["bbox"] = [im["width"] + 10, 5, 30, 40]
  _write(data, ann_file)
  r = _run_script("coco", "--annotations", ann_file, "--images", img_dir, "--out", out, check=False)
  assert r.returncode == 2 and f"annotation {a['id']}" in r.stderr and "outside" in r.stderr
  assert im["file_name"] in r.stderr


def test_empty_label_split(bad_copy):
  data, img_dir, ann_file, out = bad_copy
  for a in data["annotations"]:
    a["keypoints"] = [0] * 51
  _write(data, ann_file)
  r = _run_script("coco", "--annotations", ann_file, "--images", img_dir, "--out", out, check=False)
  assert r.returncode == 2 and "labeled split is empty" in r.stderr and "ann.json" in r.stderr
  r = _run_script(
    "coco", "--annotations", ann_file, "--images", img_dir, "--out", out, "--num_labeled", "0", check=False
  )
  assert r.returncode == 2 and "--num_labeled: '0' is not a label budget" in r.stderr  # Not "no usable instance".


def test_budget_larger_than_candidates(synthetic_coco, tmp_path):
  ann, images = synthetic_coco
  r = _run_script(
    "coco", "--annotations", ann, "--images", images, "--out", str(tmp_path), "--num_labeled", "100000", check=False
  )
  assert r.returncode == 2 and "asked for 100000 labeled instances" in r.stderr


_KILL_AFTER = """
import os, signal, sys
sys.path.insert(0, {root!r})
from semipose_tf.conversion import convert, sources
from semipose_tf.keypoints import COCO17
src = sources.load_coco({ann!r}, {images!r}, COCO17)
def die(i):
  if i == 6:
    os.kill(os.getpid(), signal.SIGKILL)
entries = convert.group_by_image(src, range(len(src.items)))
convert.write_set(entries, {out!r}, "unlabeled", num_shards=3, verbose=False, _before_write=die)
"""


def test_killed_converter_keeps_the_old_set_and_leaves_no_half_written_one(synthetic_coco, tmp_path):
  ann, images = synthetic_coco
  out = str(tmp_path / "unlabeled")
  src = sources.load_coco(ann, images, COCO17)
  half = convert.group_by_image(src, range(len(src.items) // 2))
  convert.write_set(half, out, "unlabeled", num_shards=3, verbose=False)  # A complete earlier set in that place.
  before = records.read_manifest(out)
  code = _KILL_AFTER.format(root=ROOT, ann=ann, images=images, out=out)
  r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
  assert r.returncode == -signal.SIGKILL, r.stderr
  # The old set is untouched and still complete; the new one never became visible.
  assert records.read_manifest(out) == before
  paths = records.shard_paths(out, before)
  assert sum(1 for _ in tf.data.TFRecordDataset(paths)) == before["num_images"]
  leftovers = [f for f in os.listdir(tmp_path) if f.startswith("unlabeled.tmp-")]
  assert leftovers  # The set being built when it died, aside under a temporary name.
  # Running again cleans up and completes.
  convert.write_set(convert.group_by_image(src, range(len(src.items))), out, "unlabeled", num_shards=3, verbose=False)
  assert records.read_manifest(out)["num_instances"] == len(src.items)
  assert not any(".tmp-" in f or ".old-" in f for f in os.listdir(tmp_path))
  assert not any(".tmp-" in f for f in os.listdir(out))


def test_a_stop_asked_while_writing_unwinds_between_images_and_publishes_nothing(synthetic_coco, tmp_path):
  """SIGTERM's handler asks (request_stop) instead of raising inside the thread pool, where it could deadlock."""
  ann, images = synthetic_coco
  src = sources.load_coco(ann, images, COCO17)
  out = str(tmp_path / "set")
  assert convert.request_stop() is False  # No set being written: the caller raises KeyboardInterrupt itself.
  written = []

  def ask(i):
    written.append(i)
    if i == 2:
      assert convert.request_stop() is True

  with pytest.raises(KeyboardInterrupt):
    convert.write_set(convert.group_by_image(src, range(len(src.items))), out, "unlabeled", verbose=False,
                      _before_write=ask)  # fmt: skip
  assert written == [0, 1, 2]  # Stopped at the next image, not at the end.
  assert os.listdir(tmp_path) == []  # Nothing published, nothing left aside.
  assert convert.request_stop() is False  # The writer is no longer running.
  convert.write_set(convert.group_by_image(src, range(len(src.items))), out, "unlabeled", verbose=False)
  assert records.read_manifest(out)["num_instances"] == len(src.items)  # A stop asked before does not linger.


def test_bad_input_keeps_the_complete_set_in_place(synthetic_coco, tmp_path):
  ann, images = synthetic_coco
  src = sources.load_coco(ann, images, COCO17)
  out = str(tmp_path / "set")
  convert.write_set(convert.group_by_image(src, range(len(src.items))), out, "unlabeled", verbose=False)
  before = records.read_manifest(out)
  broken = convert.group_by_image(src, range(len(src.items)))
  broken[2].path = str(tmp_path / "missing.jpg")
  with pytest.raises(sources.BadInputError, match="missing.jpg"):
    convert.write_set(broken, out, "unlabeled", verbose=False)
  assert records.read_manifest(out) == before
  assert os.listdir(tmp_path) == ["set"]


def test_truncated_shard_is_rejected(synthetic_coco, tmp_path):
  ann, images = synthetic_coco
  src = sources.load_coco(ann, images, COCO17)
  out = str(tmp_path / "set")
  m = convert.write_set(convert.group_by_image(src, range(len(src.items))), out, "unlabeled", verbose=False)
  path = os.path.join(out, m["shards"][0]["file"])
  with open(path, "r+b") as f:
    f.truncate(m["shards"][0]["bytes"] // 2)
  with pytest.raises(records.IncompleteSetError, match="bytes, the manifest says"):
    records.read_manifest(out)
