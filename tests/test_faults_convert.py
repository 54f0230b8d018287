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


@pytest.mark.parametrize("change,reason", [
    (_set_keypoint(float("nan")), "NaN or infinite"),
    (_set_keypoint(float("inf")), "NaN or infinite"),
    (_set_keypoint(1e30), "lies far outside"),
    (_set_keypoint("12.5"), "must be numbers"),
    (lambda d, a: a.update(bbox=[300, 100, -50, 200]), "no positive width and height"),
    (lambda d, a: a.update(bbox=["a", 1, 2, 3]), "must be numbers"),
    (lambda d, a: a.update(keypoints=a["keypoints"][:48]), "48 keypoint values, expected 51"),
    (lambda d, a: d["annotations"].append(dict(a)), "duplicate annotation id"),
])
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
  r = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "make_tfrecords.py"), "coco", "--annotations",
                      ann, "--images", images, "--out", str(blocker / "out"), "--num_labeled", "2"],
                     capture_output=True, text=True)
  assert r.returncode == 2 and "Traceback" not in r.stderr
  assert r.stderr.strip().splitlines()[-1].startswith("error: Not a directory: ") and str(blocker) in r.stderr


def test_an_unknown_spec_is_a_one_line_error(synthetic_coco, tmp_path):
  ann, images = synthetic_coco
  r = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "make_tfrecords.py"), "coco", "--annotations",
                      ann, "--images", images, "--out", str(tmp_path / "out"), "--spec", "nope"],
                     capture_output=True, text=True)
  assert r.returncode == 2 and "Traceback" not in r.stderr
  assert r.stderr.strip().splitlines()[-1].startswith("error: unknown keypoint spec 'nope'")
