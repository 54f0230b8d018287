import gin
import numpy as np
import pytest

from semipose_tf import configurable, keypoints


@pytest.mark.parametrize("name,k", [("coco17", 17), ("mpii16", 16), ("aic14", 14), ("coco", 17), ("mpii", 16)])
def test_builtin_specs(name, k):
  spec = keypoints.get_spec(name)
  assert spec.num_keypoints == k
  perm = spec.flip_index
  assert sorted(perm) == list(range(k))
  np.testing.assert_array_equal(perm[perm], np.arange(k))  # A flip twice is the identity.
  for a, b in spec.flip_pairs:  # Pairs join a "left" and a "right" joint of the same part.
    na, nb = spec.names[a], spec.names[b]
    assert na.replace("left", "X") == nb.replace("right", "X")
  assert len(spec.limb_colors()) == len(spec.skeleton)


def test_coco_sigmas_match_cocoeval():
  from pycocotools.cocoeval import Params

  np.testing.assert_allclose(keypoints.COCO17.sigmas, Params(iouType="keypoints").kpt_oks_sigmas, atol=1e-7)


def test_spec_json_round_trip():
  spec = keypoints.AIC14
  assert keypoints.KeypointSpec.from_json(spec.to_json()) == spec


@pytest.mark.parametrize("kwargs,match", [
    (dict(names=()), "empty"),
    (dict(names=("a", "a")), "duplicate"),
    (dict(names=("a", "b"), flip_pairs=((0, 2),)), "flip pair"),
    (dict(names=("a", "b", "c"), flip_pairs=((0, 1), (1, 2))), "more than one"),
    (dict(names=("a", "b"), sigmas=(0.1,)), "sigmas"),
    (dict(names=("a", "b"), skeleton=((0, 5),)), "skeleton"),
])
def test_spec_validation(kwargs, match):
  with pytest.raises(ValueError, match=match):
    keypoints.KeypointSpec(name="bad", **kwargs)


def test_unknown_spec_error():
  with pytest.raises(KeyError, match="unknown keypoint spec 'nope'"):
    configurable.resolve_spec("nope")


def test_custom_spec_in_gin():
  gin.clear_config()
  try:
    configurable.parse_gin(params=[
        'hand3/custom_spec.names = ["thumb", "left_tip", "right_tip"]',
        "hand3/custom_spec.flip_pairs = [(1, 2)]",
        "hand3/custom_spec.skeleton = [(0, 1), (0, 2)]",
    ])
    spec = configurable.resolve_spec("hand3")
  finally:
    gin.clear_config()
  assert spec.name == "hand3" and spec.num_keypoints == 3
  np.testing.assert_array_equal(spec.flip_index, [0, 2, 1])
  assert keypoints.get_spec("hand3") is spec  # Registered for the pipeline to find.
