"""Every data op, eagerly and inside tf.data.Dataset.map, gives the same result."""

import numpy as np
import pytest
import tensorflow as tf

from semipose_tf import codec
from semipose_tf.augment.affine import WEAK, AffineAugment, sample_affine
from semipose_tf.data import ops, records
from semipose_tf.keypoints import COCO17

K = 17


def _record_example():
  image = np.random.default_rng(0).integers(0, 255, (80, 100, 3), dtype=np.uint8)
  kps = np.zeros((2, K, 3), np.float32)
  kps[:, :, :2] = np.random.default_rng(1).uniform(10, 70, (2, K, 2))
  kps[:, :, 2] = 2
  kps[0, 3, 2] = 0
  entry = records.ImageEntry(
    7,
    "x.jpg",
    100,
    80,
    [
      records.Instance(11, np.array([10, 5, 40, 60], np.float32), kps[0], 1.0, 2400.0),
      records.Instance(12, np.array([50, 20, 30, 50], np.float32), kps[1], 0.9, 1500.0),
    ],
  )
  return records.serialize(entry, tf.io.encode_png(image).numpy()), image, kps


def _instance():
  rec, image, kps = _record_example()
  ex = ops.decode_image(records.parse(tf.constant(rec), K))
  return next(iter(ops.instances(ex))), image, kps


def _same(eager, graph):
  assert set(eager) == set(graph)
  for k in eager:
    a, b = np.asarray(eager[k]), np.asarray(graph[k])
    if a.dtype.kind in "SUO":
      np.testing.assert_array_equal(a, b, err_msg=k)
    else:
      np.testing.assert_allclose(a, b, atol=1e-5, err_msg=k)


def _both(fn, ex):
  eager = fn(ex)
  graph = next(iter(tf.data.Dataset.from_tensors(ex).map(fn)))
  _same({k: v.numpy() for k, v in eager.items()}, {k: v.numpy() for k, v in graph.items()})
  return eager


def test_parse_and_decode():
  rec, image, kps = _record_example()
  ex = _both(lambda r: ops.decode_image(records.parse(r, K)), tf.constant(rec))
  np.testing.assert_array_equal(ex["image"].numpy(), image)  # PNG: lossless.
  np.testing.assert_allclose(ex["instance/keypoints"].numpy(), kps)
  assert ex["instance/id"].numpy().tolist() == [11, 12]
  assert ex["image/id"].numpy() == 7


def test_instances_expand_in_flat_map():
  rec, image, kps = _record_example()
  ds = tf.data.Dataset.from_tensors(tf.constant(rec)).map(lambda r: ops.decode_image(records.parse(r, K)))
  items = list(ds.flat_map(ops.instances))
  assert [int(i["instance/id"]) for i in items] == [11, 12]
  np.testing.assert_allclose(items[1]["keypoints"].numpy(), kps[1])
  np.testing.assert_array_equal(items[1]["image"].numpy(), image)


def _geometry_example():
  ex, _, _ = _instance()
  return ops.center_scale(ex, 0.75)


def test_center_scale():
  ex, _, _ = _instance()
  out = _both(lambda e: ops.center_scale(e, 0.75), ex)
  c, s = codec.box_to_center_scale(ex["bbox"], 0.75)
  np.testing.assert_allclose(out["center"].numpy(), c.numpy())
  np.testing.assert_allclose(out["scale"].numpy(), s.numpy())


def test_random_affine_is_a_function_of_the_seed():
  ex = _geometry_example()
  seed = tf.constant([3, 9], tf.int64)
  out = _both(lambda e: ops.random_affine(e, seed, WEAK, (64, 48)), ex)
  again = ops.random_affine(ex, seed, WEAK, (64, 48))
  np.testing.assert_array_equal(out["affine"].numpy(), again["affine"].numpy())
  expected = codec.crop_affine(out["center"], out["scale"], out["rotation"], (64, 48), out["flip"])
  np.testing.assert_allclose(out["affine"].numpy(), expected.numpy(), atol=1e-5)


def test_fixed_affine_crop_transform_targets_normalize():
  ex = _geometry_example()
  ex = _both(lambda e: ops.fixed_affine(e, (64, 48)), ex)
  assert float(ex["rotation"]) == 0.0 and not bool(ex["flip"])
  ex = _both(lambda e: ops.crop(e, (64, 48)), ex)
  assert ex["image"].shape == (64, 48, 3) and ex["image"].dtype == tf.uint8
  ex = _both(lambda e: ops.transform_keypoints(e, COCO17.flip_index), ex)
  assert ex["visible"].numpy()[3] == 0 and ex["visible"].numpy().sum() == K - 1
  ex = _both(lambda e: ops.make_targets(e, codec.HeatmapCodec((64, 48))), ex)
  assert ex["heatmaps"].shape == (16, 12, K)
  out = _both(ops.normalize, ex)
  assert out["image"].dtype == tf.float32
  np.testing.assert_array_equal(ops.denormalize(out["image"]).numpy(), ex["image"].numpy())


def test_flip_swaps_left_and_right_channels():
  ex = _geometry_example()
  ex = ops.fixed_affine(ex, (64, 48))
  plain = ops.transform_keypoints(ex, COCO17.flip_index)
  flipped = dict(ex)
  flipped["flip"] = tf.constant(True)
  flipped["affine"] = codec.crop_affine(ex["center"], ex["scale"], 0.0, (64, 48), True)
  flipped = _both(lambda e: ops.transform_keypoints(e, COCO17.flip_index), flipped)
  p, f = plain["joints"].numpy(), flipped["joints"].numpy()
  # Mirror about the crop's vertical centre line x = W / 2, with left/right channels exchanged.
  np.testing.assert_allclose(f[:, 0], 48 - p[COCO17.flip_index, 0], atol=1e-4)
  np.testing.assert_allclose(f[:, 1], p[COCO17.flip_index, 1], atol=1e-4)
  np.testing.assert_array_equal(flipped["visible"].numpy(), plain["visible"].numpy()[COCO17.flip_index])


def test_select():
  ex = _geometry_example()
  out = _both(lambda e: ops.select(e, ("center", "scale")), ex)
  assert set(out) == {"center", "scale"}


@pytest.mark.parametrize("config", [WEAK, AffineAugment(rotation_prob=0.8, flip_prob=0.0)])  # Weak, strong.
def test_sample_affine_distribution(config):
  p = sample_affine(tf.constant([1, 2]), config, shape=(20000,))
  s, r, f = p["scale_mult"].numpy(), p["rotation"].numpy(), p["flip"].numpy()
  assert s.min() >= 0.75 - 1e-6 and s.max() <= 1.25 + 1e-6
  assert np.abs(r).max() <= 60 + 1e-6
  assert abs((r != 0).mean() - config.rotation_prob) < 0.02
  assert abs(f.mean() - config.flip_prob) < 0.02
  assert abs(r[r != 0].std() - 30 * 0.96) < 2.0  # N(0, 30) clipped at 2 sigma has std ~ 0.88-0.96 x 30.
