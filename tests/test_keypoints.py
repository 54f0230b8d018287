import json

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


@pytest.mark.parametrize(
  "kwargs,match",
  [
    (dict(names=()), "empty"),
    (dict(names=("a", "a")), "duplicate"),
    (dict(names=("a", "b"), flip_pairs=((0, 2),)), "flip pair"),
    (dict(names=("a", "b", "c"), flip_pairs=((0, 1), (1, 2))), "more than one"),
    (dict(names=("a", "b"), sigmas=(0.1,)), "sigmas"),
    (dict(names=("a", "b"), skeleton=((0, 5),)), "skeleton"),
  ],
)
def test_spec_validation(kwargs, match):
  with pytest.raises(ValueError, match=match):
    keypoints.KeypointSpec(name="bad", **kwargs)


def test_unknown_spec_error():
  with pytest.raises(KeyError, match="unknown keypoint spec 'nope'"):
    keypoints.get_spec("nope")


def test_custom_spec_in_gin():
  gin.clear_config()
  try:
    configurable.parse_gin(
      params=[
        'hand3/custom_spec.names = ["thumb", "left_tip", "right_tip"]',
        "hand3/custom_spec.flip_pairs = [(1, 2)]",
        "hand3/custom_spec.skeleton = [(0, 1), (0, 2)]",
      ]
    )
    spec = keypoints.get_spec("hand3")  # Found through the gin resolver configurable registers.
  finally:
    gin.clear_config()
  assert spec.name == "hand3" and spec.num_keypoints == 3
  np.testing.assert_array_equal(spec.flip_index, [0, 2, 1])
  assert keypoints.get_spec("hand3") is spec  # Registered for the pipeline to find.


def test_gin_spec_by_reference_and_unscoped():
  """``@mine/custom_spec()`` takes its name from the scope; an unscoped spec answers only to its own name."""
  gin.clear_config()
  try:
    configurable.parse_gin(
      params=[
        'foot2/custom_spec.names = ["heel", "toe"]',
        'custom_spec.name = "pair2"',
        'custom_spec.names = ["left", "right"]',
        "custom_spec.flip_pairs = [(0, 1)]",
        "DataConfig.spec = @foot2/custom_spec()",
      ]
    )
    by_ref = gin.query_parameter("DataConfig.spec").scoped_configurable_fn()
    unscoped = keypoints.get_spec("pair2")
    with pytest.raises(KeyError, match="unknown keypoint spec 'other'"):
      keypoints.get_spec("other")
  finally:
    gin.clear_config()
  assert by_ref.name == "foot2" and by_ref.names == ("heel", "toe")
  assert unscoped.name == "pair2" and unscoped.flip_pairs == ((0, 1),)


def test_spec_json_round_trip_and_lsp14():
  lsp = keypoints.get_spec("lsp")
  assert lsp is keypoints.LSP14 and lsp.num_keypoints == 14 and len(lsp.sigmas) == 14
  # Flip pairs are (left, right): every first index names a left joint.
  assert all(lsp.names[a].startswith("left_") and lsp.names[b].startswith("right_") for a, b in lsp.flip_pairs)
  for spec in (keypoints.COCO17, keypoints.MPII16, keypoints.AIC14, lsp):
    again = keypoints.get_spec(json.loads(json.dumps(spec.to_json())))
    assert again == spec
  assert keypoints.KeypointSpec.from_json({"name": "x", "names": ["a"], "comment": "ignored"}).names == ("a",)
