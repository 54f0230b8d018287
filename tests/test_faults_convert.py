"""Conversion under malformed input: every bad value is an error naming the annotation id and file (or a counted
skip with --skip_bad); file-system errors are one line naming the path."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT

from semipose_tf.conversion import sources
from semipose_tf.keypoints import COCO17, get_spec


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
    (lambda d, a: a.update(area=-5), "area -5 is not positive"),
    (lambda d, a: a.update(area=0), "area 0 is not positive"),
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


def _detections_naming(tmp_path, images, file_name: str):
  """load_detections of one detection whose --image_info names ``file_name``."""
  info = tmp_path / "info.json"
  info.write_text(json.dumps({"images": [{"id": 7, "file_name": file_name, "width": 20, "height": 20}]}))
  dets = tmp_path / "dets.json"
  dets.write_text(json.dumps([{"image_id": 7, "category_id": 1, "bbox": [1, 1, 5, 5], "score": 0.9}]))
  return sources.load_detections(str(dets), str(images), COCO17, image_info=str(info))


@pytest.mark.parametrize("name", ["../outside.jpg", "/etc/hostname"])
def test_mpii_and_detection_image_names_outside_the_folder_are_refused(tmp_path, name):
  """MPII's ``image`` and --image_info's ``file_name`` follow COCO's rule: a path inside --images or an error."""
  images = tmp_path / "images"
  images.mkdir()
  (tmp_path / "outside.jpg").write_bytes(b"not read")
  mpii = tmp_path / "mpii.json"
  mpii.write_text(
    json.dumps([{"image": name, "center": [10, 10], "scale": 1.0, "joints": [[1, 1]] * 16, "joints_vis": [1] * 16}])
  )
  with pytest.raises(sources.BadInputError, match=r"mpii.json: entry 0: file_name .* is not a path inside --images"):
    sources.load_mpii(str(mpii), str(images), get_spec("mpii16"))
  with pytest.raises(sources.BadInputError, match=r"info.json: image id 7: file_name .* is not a path inside"):
    _detections_naming(tmp_path, images, name)


def test_a_link_inside_the_image_folder_to_a_file_outside_it_is_refused(tmp_path):
  """LSP (and every converter): a symbolic link in --images that points outside it is refused, naming both."""
  from scipy.io import savemat

  from semipose_tf.conversion import lsp

  images = tmp_path / "images"
  images.mkdir()
  (tmp_path / "secret.jpg").write_bytes(b"outside")
  os.symlink(tmp_path / "secret.jpg", images / "im00001.jpg")
  savemat(tmp_path / "joints.mat", {"joints": np.ones((14, 3, 1))})
  with pytest.raises(
    sources.BadInputError, match=r"image 1: .*im00001.jpg is a link to .*secret.jpg, outside --images"
  ):
    lsp.load_lsp(str(tmp_path / "joints.mat"), str(images))
  with pytest.raises(sources.BadInputError, match=r"is a link to .*secret.jpg, outside --images"):
    _detections_naming(tmp_path, images, "im00001.jpg")


def test_a_detection_with_a_score_that_is_not_a_number_is_refused(tmp_path):
  images = tmp_path / "images"
  images.mkdir()
  dets = tmp_path / "dets.json"
  dets.write_text('[{"image_id": 7, "category_id": 1, "bbox": [1, 1, 5, 5], "score": NaN}]')
  with pytest.raises(sources.BadInputError, match=r"annotation 0 .*dets.json.*: score nan is not a finite number"):
    sources.load_detections(str(dets), str(images), COCO17)


def test_a_coco_image_entry_without_its_size_is_one_line_naming_it(synthetic_coco, tmp_path):
  ann, images = synthetic_coco
  d = json.load(open(ann))
  del d["images"][0]["width"]
  path = str(tmp_path / "nowidth.json")
  json.dump(d, open(path, "w"))
  with pytest.raises(sources.BadInputError, match=f"image id {d['images'][0]['id']} .* has no width"):
    sources.load_coco(path, images, COCO17)


def test_written_folders_and_files_have_the_permissions_a_plain_mkdir_gives(tmp_path):
  """Sets, SavedModels and exports are built aside (atomic.write_directory) and were left 0700 by mkdtemp: TF
  Serving running as another user could not read them. Now the user's umask decides, as for mkdir."""
  from semipose_tf import atomic

  old = os.umask(0o022)
  try:
    out = tmp_path / "export"
    atomic.write_directory(str(out), lambda d: open(os.path.join(d, "model.bin"), "w").write("x"))
    atomic.write_text(str(tmp_path / "a.json"), "{}")
    assert oct(os.stat(out).st_mode & 0o777) == "0o755"
    assert oct(os.stat(out / "model.bin").st_mode & 0o777) == "0o644"
    assert oct(os.stat(tmp_path / "a.json").st_mode & 0o777) == "0o644"
  finally:
    os.umask(old)


@pytest.mark.parametrize(
  "args,match",
  [
    (["--num_labeled", "abc"], "argument --num_labeled: 'abc' is not a label budget"),
    (["--num_labeled", "0"], "argument --num_labeled: '0' is not a label budget"),
    (["--sets", "labled"], "--sets: unknown set 'labled'; choose from labeled, unlabeled, eval"),
  ],
)
def test_bad_converter_arguments_are_one_usage_line(tmp_path, args, match):
  from conftest import run_script

  r = run_script("scripts/make_tfrecords.py", "coco", "--annotations", "x.json", "--images", str(tmp_path),
                 "--out", str(tmp_path / "o"), *args)  # fmt: skip
  assert r.returncode == 2 and "Traceback" not in r.stderr and match in r.stderr.strip().splitlines()[-1], r.stderr


@pytest.mark.parametrize(
  "change,match",
  [
    (lambda a: a.pop("scale"), "scale None is not a positive number"),
    (lambda a: a.update(center=[1.0, 2.0, 3.0]), r"center \[1.0, 2.0, 3.0\] is not \[x, y\]"),
    (lambda a: a.update(center=5), r"center 5 is not \[x, y\]"),
    (lambda a: a.update(joints="none"), "joints must be finite numbers"),
  ],
)
def test_a_bad_mpii_entry_is_named(tmp_path, change, match):
  from conftest import shared_path

  ann = shared_path("samples", "mpii", "test_mpii.json")
  data = json.load(open(ann))
  change(data[1])
  path = tmp_path / "mpii.json"
  path.write_text(json.dumps(data))
  with pytest.raises(sources.BadInputError, match=f"annotation 1 .*: {match}"):
    sources.load_mpii(str(path), shared_path("samples", "mpii"), get_spec("mpii16"))


def test_a_joints_file_that_is_not_matlab_is_named(tmp_path):
  from semipose_tf.conversion import lsp

  (tmp_path / "joints.mat").write_text("not a MATLAB file")
  with pytest.raises(sources.BadInputError, match="joints.mat: not a readable MATLAB file"):
    lsp.load_joints(str(tmp_path / "joints.mat"))


def test_lsp_an_empty_image_and_a_joint_far_outside_are_named(tmp_path):
  """A 0-byte image was refused without naming the file; a joint at x = 1e6 or -500 was converted silently."""
  import shutil

  from conftest import shared_path
  from scipy.io import savemat

  from semipose_tf.conversion import lsp

  images = tmp_path / "images"
  images.mkdir()
  for i in (1, 2, 3):
    shutil.copy(shared_path("lspet", "images", f"im{i:05d}.jpg"), images / f"im{i:05d}.jpg")
  (images / "im00002.jpg").write_bytes(b"")
  joints = np.ones((14, 3, 3)) * 20
  joints[0, 0, 2] = 1e6
  savemat(tmp_path / "joints.mat", {"joints": joints})
  with pytest.raises(sources.BadInputError) as e:
    lsp.load_lsp(str(tmp_path / "joints.mat"), str(images))
  assert "2 bad annotation(s)" in str(e.value)
  assert "annotation 2 (file " + str(images / "im00002.jpg") + "): an empty file (0 bytes)" in str(e.value)
  assert "annotation 3 (file " in str(e.value) and "keypoint 0 at (999999, 19) lies far outside" in str(e.value)


@pytest.mark.slow
def test_a_conversion_stopped_by_sigterm_leaves_no_temporary_folder(tmp_path):
  """A 52 MB <set>.tmp-* folder stayed behind a killed conversion; SIGTERM now unwinds and removes it."""
  import signal
  import time

  from conftest import shared_path

  lspet = shared_path("lspet")
  out = tmp_path / "out"
  cmd = [sys.executable, os.path.join(ROOT, "scripts", "make_tfrecords.py"), "lsp", "--joints",
         os.path.join(lspet, "joints.mat"), "--images", os.path.join(lspet, "images"), "--out", str(out),
         "--sets", "unlabeled"]  # fmt: skip
  proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 120
  while time.time() < deadline and proc.poll() is None:
    if out.exists() and any(".tmp-" in n and any((out / n).iterdir()) for n in os.listdir(out)):
      break
    time.sleep(0.05)
  proc.send_signal(signal.SIGTERM)
  _, err = proc.communicate(timeout=60)
  assert proc.returncode == 130, err[-2000:]
  assert "Traceback" not in err and "interrupted: the set being written" in err.strip().splitlines()[-1]
  assert [n for n in os.listdir(out) if n != ".lock"] == [], os.listdir(out)
