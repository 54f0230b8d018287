import json
import os

import numpy as np
import pytest

from semipose_tf.conversion import convert, sources
from semipose_tf.data import records
from semipose_tf.keypoints import COCO17
from semipose_tf.synthetic import generate, render

CFG = render.SyntheticConfig(image_size=(160, 200))


def test_render_is_a_function_of_the_seed():
  a, anns_a = render.render_image((1, 2, 3), CFG)
  b, anns_b = render.render_image((1, 2, 3), CFG)
  c, _ = render.render_image((1, 2, 4), CFG)
  np.testing.assert_array_equal(a, b)
  assert len(anns_a) == len(anns_b) and not np.array_equal(a, c)
  assert a.shape == (160, 200, 3) and a.dtype == np.uint8


def test_visibility_flags_are_honest():
  counts = np.zeros(3)
  for i in range(40):
    image, anns = render.render_image((0, 9, i), CFG)
    for a in anns:
      k = a["keypoints"]
      counts += np.bincount(k[:, 2].astype(int), minlength=3)
      off = k[:, 2] == 0
      np.testing.assert_array_equal(k[off, :2], 0)  # Unlabeled joints carry no position.
      on = k[:, 2] > 0
      assert (k[on, 0] >= -0.5).all() and (k[on, 0] < 200).all() and (k[on, 1] < 160).all()
      x, y, w, h = a["bbox"]
      assert w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= 200 and y + h <= 160
  # All three kinds occur: visible, labeled-but-occluded and unlabeled.
  assert (counts > 0).all() and counts[2] > counts[1], counts


def test_hard_flag_and_people_per_image():
  people, hard = [], 0
  for i in range(40):
    _, anns = render.render_image((0, 7, i), CFG)
    people.append(len(anns))
    hard += sum(a["hard"] for a in anns)
    for a in anns:
      assert a["hard"] == bool(a["difficulty"]["reasons"])
  total = sum(people)
  assert max(people) >= 2 and 0.1 < hard / total < 0.8


def test_left_limbs_are_darker_than_right():
  """The consistent left/right cue: left-side limb pixels are darker than right-side ones of the same person."""
  ratios = []
  for i in range(30):
    image, anns = render.render_image(
      (0, 5, i), render.SyntheticConfig(image_size=(160, 200), hard_prob=0, occluder_prob=0)
    )
    lum = image.astype(np.float32).mean(-1)
    for a in anns:
      k = a["keypoints"]
      for left, right in ((7, 8), (13, 14)):  # Elbows, knees: limb pixels when visible.
        if k[left, 2] == 2 and k[right, 2] == 2:
          lx, ly = k[left, :2].astype(int)
          rx, ry = k[right, :2].astype(int)
          ratios.append(lum[ly, lx] / max(lum[ry, rx], 1.0))
  assert len(ratios) > 10 and np.median(ratios) < 0.85, (len(ratios), np.median(ratios))


def test_synthetic_dataset_feeds_the_coco_converter(synthetic_coco, tmp_path):
  ann, images = synthetic_coco
  data = json.load(open(ann))
  assert len(data["images"]) == 12 and all(
    os.path.exists(os.path.join(images, im["file_name"])) for im in data["images"]
  )
  src = sources.load_coco(ann, images, COCO17)
  assert src.stats["bad"] == 0
  out = convert.convert(src, str(tmp_path), ("unlabeled",), verbose=False)
  assert out["unlabeled"]["num_instances"] == sum(1 for a in data["annotations"] if a["num_keypoints"] > 0)
  assert (
    records.read_manifest(str(tmp_path / "unlabeled"))["record_bytes"] <= 1.1 * out["unlabeled"]["source_image_bytes"]
  )


def test_prepare_generates_converts_once_and_refuses_other_parameters(tmp_path):
  root = str(tmp_path / "syn")
  kw = dict(train_images=14, val_images=3, num_labeled=(5, None), max_people=1, workers=1, verbose=False)
  sets = generate.prepare(root, **kw)
  assert sorted(sets) == ["eval", "labeled_5", "labeled_all", "unlabeled"]
  people = json.load(open(os.path.join(root, "raw", "annotations", "person_keypoints_train.json")))["annotations"]
  assert records.read_manifest(sets["labeled_5"])["num_instances"] == 5
  assert records.read_manifest(sets["labeled_all"])["num_instances"] == len(people)
  assert records.read_manifest(sets["unlabeled"])["num_instances"] == len(people)
  assert records.read_manifest(sets["eval"])["source"]["files"][0].endswith("person_keypoints_val.json")
  stamp = os.path.join(root, "raw", "synthetic.json")
  before = {p: os.path.getmtime(os.path.join(d, "manifest.json")) for p, d in sets.items()}
  assert generate.prepare(root, **kw) == sets  # Already there: nothing is rendered or written again.
  assert before == {p: os.path.getmtime(os.path.join(d, "manifest.json")) for p, d in sets.items()}
  # A set lost (or a budget added) is converted again from the rendered images, without rendering them again.
  os.remove(os.path.join(sets["labeled_5"], "manifest.json"))
  mtime = os.path.getmtime(stamp)
  generate.prepare(root, **kw)
  assert records.read_manifest(sets["labeled_5"])["num_instances"] == 5 and os.path.getmtime(stamp) == mtime
  with pytest.raises(ValueError, match="holds synthetic data made with"):
    generate.prepare(root, **{**kw, "train_images": 20})


def test_fully_hidden_people_are_not_annotated():
  # Images 3381 and 5313 of the default train split (seed 0) each hold a person whom others hide completely; such a
  # person once got area 0, which the COCO converter (as the reference) rejects.
  for index in (3380, 5312):
    image, anns = render.render_image((0, 1, index))
    assert anns and all(a["area"] > 0 for a in anns)
