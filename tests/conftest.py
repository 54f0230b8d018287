"""Shared fixtures: the real data in ../shared/data (skipped with a reason when absent) and small synthetic sets."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.environ.get("SEMIPOSE_SHARED_DATA", os.path.join(os.path.dirname(ROOT), "shared", "data"))


def shared_path(*parts: str) -> str:
  """Path under ../shared/data; skips the test with a reason when it is absent."""
  path = os.path.join(SHARED_DATA, *parts)
  if not os.path.exists(path):
    pytest.skip(f"real test data not found at {path} (set SEMIPOSE_SHARED_DATA or place shared/data beside the repo)")
  return path


@pytest.fixture(scope="session")
def synthetic_coco(tmp_path_factory):
  """A tiny synthetic COCO-format dataset: (annotation json, image dir) of 12 train images at 160x200."""
  from semipose_tf.synthetic import generate, render

  out = str(tmp_path_factory.mktemp("synthetic"))
  files = generate.generate(out, {"train": 12}, seed=3, config=render.SyntheticConfig(image_size=(160, 200)),
                      workers=1, verbose=False)
  return files["train"], os.path.join(out, "train")


@pytest.fixture(scope="session")
def coco_mini_sets(tmp_path_factory):
  """coco_mini train converted to labeled (first 40) + unlabeled sets; returns the output dir."""
  from semipose_tf.conversion import convert, sources
  from semipose_tf.keypoints import COCO17

  ann = shared_path("coco_mini", "annotations", "person_keypoints_train2017.json")
  out = str(tmp_path_factory.mktemp("coco_mini"))
  src = sources.load_coco(ann, shared_path("coco_mini", "train2017"), COCO17)
  convert.convert(src, out, ("labeled", "unlabeled"), num_labeled=40, verbose=False)
  return out


def pytest_collection_modifyitems(config, items):
  """The slow tests first, each group in its collection order.

  Under README's ``-n 2 --dist worksteal`` the long tests (a minute or more each) then start at once, and the fast
  ones fill in around them; collected alphabetically, the longest ones came last and one process finished minutes
  before the other."""
  items.sort(key=lambda item: item.get_closest_marker("slow") is None)
