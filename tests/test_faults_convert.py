"""Conversion under malformed input: every bad value is an error naming the annotation id and file (or a counted
skip with --skip_bad); file-system errors are one line naming the path."""

import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT

from semipose_tf.conversion import sources
from semipose_tf.keypoints import COCO17


def _with(ann_file, tmp_path, change):
  d = json.load(open(ann_file))
  target = d["annotations"][1]
  change(d, target)
  path = str(tmp_path / "bad.json")
  json.dump(d, open(path, "w"))
  return path, target["id"]


def _set_keypoint(value):
  def change(d, a):
    a["keypoints"][0], a["keypoints"][2] = value, 2

  return change


@pytest.mark.parametrize(
  "change,reason",
  [
    (_set_keypoint(float("nan")), "NaN or infinite"),
    (_set_keypoint(float("inf")), "NaN or infinite"),
    (_set_keypoint(1e30), "lies far outside"),
    (_set_keypoint("12.5"), "must be numbers"),
    (lambda d, a: a.update(bbox=[300, 100, -50, 200]), "no positive width and height"),
    (lambda d, a: a.update(bbox=["a", 1, 2, 3]), "must be numbers"),
    (lambda d, a: a.update(keypoints=a["keypoints"][:48]), "48 keypoint values, expected 51"),
    (lambda d, a: d["annotations"].append(dict(a)), "duplicate annotation id"),
    (lambda d, a: a["keypoints"].__setitem__(2, 7), "visibility 7; COCO visibility is 0"),
    (lambda d, a: a["keypoints"].__setitem__(5, -3), "visibility -3"),
    (lambda d, a: a["keypoints"].__setitem__(2, 0.5), "visibility 0.5"),
  ],
)
def test_malformed_values_are_named_or_skipped(synthetic_coco, tmp_path, change, reason):
  ann, images = synthetic_coco
  path, ann_id = _with(ann, tmp_path, change)
  with pytest.raises(sources.BadInputError, match=reason) as e:
    sources.load_coco(path, images, COCO17)
  assert f"annotation {ann_id} (file " in str(e.value)
  src = sources.load_coco(path, images, COCO17, skip_bad=True)
  assert src.stats["bad"] == 1 and reason.split()[0] in src.problems[0].reason


def test_file_system_errors_are_one_line_naming_the_path(synthetic_coco, tmp_path):
  ann, images = synthetic_coco
  blocker = tmp_path / "a_file"
  blocker.write_text("not a folder")
  r = subprocess.run(
    [
      sys.executable,
      os.path.join(ROOT, "scripts", "make_tfrecords.py"),
      "coco",
      "--annotations",
      ann,
      "--images",
      images,
      "--out",
      str(blocker / "out"),
      "--num_labeled",
      "2",
    ],
    capture_output=True,
    text=True,
  )
  assert r.returncode == 2 and "Traceback" not in r.stderr
  assert r.stderr.strip().splitlines()[-1].startswith("error: Not a directory: ") and str(blocker) in r.stderr


def test_an_unknown_spec_is_a_one_line_error(synthetic_coco, tmp_path):
  ann, images = synthetic_coco
  r = subprocess.run(
    [
      sys.executable,
      os.path.join(ROOT, "scripts", "make_tfrecords.py"),
      "coco",
      "--annotations",
      ann,
      "--images",
      images,
      "--out",
      str(tmp_path / "out"),
      "--spec",
      "nope",
    ],
    capture_output=True,
    text=True,
  )
  assert r.returncode == 2 and "Traceback" not in r.stderr
  assert r.stderr.strip().splitlines()[-1].startswith("error: unknown keypoint spec 'nope'")


@pytest.mark.parametrize("file_name", ["../outside/secret.jpg", "/etc/hostname", ""])
def test_image_paths_that_leave_the_image_folder_are_refused(synthetic_coco, tmp_path, file_name):
  ann, images = synthetic_coco
  d = json.load(open(ann))
  d["images"][0]["file_name"] = file_name
  path = str(tmp_path / "escape.json")
  json.dump(d, open(path, "w"))
  with pytest.raises(
    sources.BadInputError, match=f"image id {d['images'][0]['id']}: file_name .* is not a path inside --images"
  ):
    sources.load_coco(path, images, COCO17)


def test_a_duplicate_image_id_with_another_file_is_refused(synthetic_coco, tmp_path):
  ann, images = synthetic_coco
  d = json.load(open(ann))
  first, second = d["images"][:2]
  second["id"] = first["id"]  # The second image's people would be stored with the first image's pixels.
  path = str(tmp_path / "dup.json")
  json.dump(d, open(path, "w"))
  with pytest.raises(
    sources.BadInputError,
    match=f"image id {first['id']} is listed twice, as .*{first['file_name']} and .*{second['file_name']}",
  ):
    sources.load_coco(path, images, COCO17)


def test_one_converter_per_output_folder(synthetic_coco, tmp_path):
  ann, images = synthetic_coco
  out = tmp_path / "out"
  out.mkdir()
  holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
  try:
    (out / ".lock").write_text(
      json.dumps({"pid": holder.pid, "host": __import__("socket").gethostname(), "started": "now"})
    )
    r = subprocess.run(
      [
        sys.executable,
        os.path.join(ROOT, "scripts", "make_tfrecords.py"),
        "coco",
        "--annotations",
        ann,
        "--images",
        images,
        "--out",
        str(out),
        "--num_labeled",
        "2",
      ],
      capture_output=True,
      text=True,
    )
  finally:
    holder.kill()
  assert r.returncode == 2 and r.stderr.strip().splitlines() == [r.stderr.strip()], r.stderr[-2000:]
  assert f"folder {out} is in use by pid {holder.pid}" in r.stderr and "another --out" in r.stderr
  assert not any(n.endswith("manifest.json") for _, _, fs in os.walk(out) for n in fs)
