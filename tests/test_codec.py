import cv2
import numpy as np
import pytest
import tensorflow as tf

from semipose_tf import codec

# --- An independent implementation of the reference's geometry (numpy + OpenCV), for comparison. ---


def _ref_box2cs(box, aspect_ratio):
  x, y, w, h = box
  center = np.array([x + w * 0.5, y + h * 0.5])
  if w > aspect_ratio * h:
    h = w / aspect_ratio
  elif w < aspect_ratio * h:
    w = h * aspect_ratio
  return center, np.array([w / 200.0, h / 200.0]) * 1.25


def _ref_affine(center, scale, rot, output_size_wh):
  def get_dir(p, r):
    sn, cs = np.sin(r), np.cos(r)
    return np.array([p[0] * cs - p[1] * sn, p[0] * sn + p[1] * cs])

  def third(a, b):
    d = a - b
    return b + np.array([-d[1], d[0]])

  src_w = scale[0] * 200.0
  dst_w, dst_h = output_size_wh
  src_dir = get_dir([0, src_w * -0.5], np.pi * rot / 180)
  src = np.zeros((3, 2), np.float32)
  dst = np.zeros((3, 2), np.float32)
  src[0] = center
  src[1] = center + src_dir
  dst[0] = [dst_w * 0.5, dst_h * 0.5]
  dst[1] = dst[0] + np.array([0, dst_w * -0.5])
  src[2] = third(src[0], src[1])
  dst[2] = third(dst[0], dst[1])
  return cv2.getAffineTransform(src, dst)


def _ref_flipped_affine(center, scale, rot, output_size_wh, image_width):
  """The reference flips the image (x -> W - 1 - x) and the centre, then crops."""
  flipped_center = np.array([image_width - center[0] - 1, center[1]])
  flip = np.array([[-1, 0, image_width - 1], [0, 1, 0], [0, 0, 1]], np.float64)
  return _ref_affine(flipped_center, scale, rot, output_size_wh) @ flip


@pytest.mark.parametrize("box", [(10, 20, 100, 50), (5, 5, 30, 200), (0, 0, 75, 100)])
def test_box_to_center_scale(box):
  c, s = codec.box_to_center_scale(np.array(box, np.float32), 192 / 256)
  rc, rs = _ref_box2cs(box, 192 / 256)
  np.testing.assert_allclose(c.numpy(), rc, rtol=1e-6)
  np.testing.assert_allclose(s.numpy(), rs, rtol=1e-6)


@pytest.mark.parametrize("rot,flip", [(0.0, False), (37.5, False), (-52.0, True), (20.0, True)])
def test_crop_affine_matches_opencv_reference(rot, flip):
  center, scale = np.array([321.5, 180.25]), np.array([1.7, 2.2667])
  ours = codec.crop_affine(center, scale, rot, (256, 192), flip).numpy()
  ref = (
    _ref_flipped_affine(center, scale, rot, (192, 256), 640) if flip else _ref_affine(center, scale, rot, (192, 256))
  )
  np.testing.assert_allclose(ours, ref, atol=2e-3)


def test_warp_matches_cv2_warp_affine():
  rng = np.random.default_rng(0)
  image = rng.uniform(0, 255, (300, 400, 3)).astype(np.float32)
  m = codec.crop_affine([210.0, 140.0], [1.1, 1.4667], 33.0, (256, 192), True).numpy()
  ref = cv2.warpAffine(image, m.astype(np.float64), (192, 256), flags=cv2.INTER_LINEAR)
  ours = codec.warp_image(image, m, (256, 192)).numpy()
  inner = (slice(2, -2), slice(2, -2))  # Border pixels differ in how the fill blends in.
  np.testing.assert_allclose(ours[inner], ref[inner], atol=0.02 * 255)
  assert np.abs(ours[inner] - ref[inner]).mean() < 0.05


def test_warp_batch_and_uint8():
  image = np.random.default_rng(1).integers(0, 255, (2, 50, 60, 3), dtype=np.uint8)
  m = codec.crop_affine([[30.0, 25.0], [20.0, 20.0]], [[0.3, 0.4], [0.2, 0.2667]], [0.0, 10.0], (32, 24))
  out = codec.warp_image(image, m, (32, 24))
  assert out.shape == (2, 32, 24, 3) and out.dtype == tf.uint8


def test_affine_inverse_round_trip():
  rng = np.random.default_rng(2)
  center = rng.uniform(50, 500, (8, 2)).astype(np.float32)
  scale = rng.uniform(0.3, 3.0, (8, 2)).astype(np.float32)
  rot = rng.uniform(-60, 60, 8).astype(np.float32)
  flip = rng.random(8) < 0.5
  pts = rng.uniform(0, 640, (8, 17, 2)).astype(np.float32)
  m = codec.crop_affine(center, scale, rot, (256, 192), flip)
  back = codec.apply_affine(codec.invert_affine(m), codec.apply_affine(m, pts))
  np.testing.assert_allclose(back.numpy(), pts, atol=1e-3)
  ident = codec.compose_affine(codec.invert_affine(m), m).numpy()
  np.testing.assert_allclose(ident, np.broadcast_to([[1, 0, 0], [0, 1, 0]], ident.shape), atol=1e-4)


def test_encode_decode_round_trip_within_half_pixel():
  rng = np.random.default_rng(3)
  hm_pts = rng.uniform(2.0, [45.0, 61.0], (64, 17, 2)).astype(np.float32)  # In-range, off the border.
  maps, weights = codec.encode_heatmaps(hm_pts * 4, np.ones((64, 17)), (256, 192), (64, 48))
  assert maps.shape == (64, 64, 48, 17)
  np.testing.assert_array_equal(weights.numpy(), 1.0)
  np.testing.assert_allclose(tf.reduce_max(maps, axis=(1, 2)).numpy(), 1.0)  # Peak 1.
  coords, scores = codec.decode_heatmaps(maps)
  err = np.abs(coords.numpy() - hm_pts)
  assert err.max() <= 0.5 + 1e-5, err.max()
  np.testing.assert_allclose(scores.numpy(), 1.0)
  # Subpixel targets decode closer: the quarter-pixel shift points the right way.
  maps_sp, _ = codec.encode_heatmaps(hm_pts * 4, np.ones((64, 17)), (256, 192), (64, 48), subpixel=True)
  err_sp = np.abs(codec.decode_heatmaps(maps_sp)[0].numpy() - hm_pts)
  assert err_sp.max() <= 0.5 + 1e-5 and err_sp.mean() < err.mean()


def test_encode_matches_reference_generate_target():
  """Against a transcription of the reference's loop over joints."""
  joints = np.array([[100.0, 50.0], [3.0, 250.0], [-20.0, 10.0], [191.0, 255.0], [400.0, 30.0]], np.float32)
  vis = np.array([1, 1, 1, 1, 0], np.float32)
  sigma, tmp = 2, 6
  target = np.zeros((5, 64, 48), np.float32)
  weight = vis.copy()
  for j in range(5):
    mu_x, mu_y = int(joints[j, 0] / 4 + 0.5), int(joints[j, 1] / 4 + 0.5)
    ul, br = [int(mu_x - tmp), int(mu_y - tmp)], [int(mu_x + tmp + 1), int(mu_y + tmp + 1)]
    if ul[0] >= 48 or ul[1] >= 64 or br[0] < 0 or br[1] < 0:
      weight[j] = 0
      continue
    x = np.arange(0, 2 * tmp + 1, 1, np.float32)
    y = x[:, None]
    g = np.exp(-((x - tmp) ** 2 + (y - tmp) ** 2) / (2 * sigma**2))
    g_x = max(0, -ul[0]), min(br[0], 48) - ul[0]
    g_y = max(0, -ul[1]), min(br[1], 64) - ul[1]
    img_x, img_y = (max(0, ul[0]), min(br[0], 48)), (max(0, ul[1]), min(br[1], 64))
    if weight[j] > 0.5:
      target[j][img_y[0] : img_y[1], img_x[0] : img_x[1]] = g[g_y[0] : g_y[1], g_x[0] : g_x[1]]
  maps, w = codec.encode_heatmaps(joints, vis, (256, 192), (64, 48))
  np.testing.assert_array_equal(w.numpy(), weight)
  np.testing.assert_allclose(np.transpose(maps.numpy(), (2, 0, 1)), target, atol=1e-6)


def test_decode_shift_and_border_rules():
  hm = np.zeros((1, 10, 12, 3), np.float32)
  hm[0, 5, 6, 0], hm[0, 5, 7, 0], hm[0, 6, 6, 0] = 1.0, 0.5, 0.2  # Shift right and down.
  hm[0, 1, 6, 1], hm[0, 1, 7, 1] = 1.0, 0.5  # py == 1: on the border band, no shift (reference: 1 < py).
  coords, scores = codec.decode_heatmaps(hm)  # Channel 2 is empty: (0, 0).
  np.testing.assert_allclose(coords.numpy()[0], [[6.25, 5.25], [6.0, 1.0], [0.0, 0.0]])
  np.testing.assert_allclose(scores.numpy()[0], [1.0, 1.0, 0.0])


def test_image_keypoints_survive_encode_decode():
  """Image -> crop -> heatmap -> decode -> image lands within half a heatmap pixel (in image pixels)."""
  rng = np.random.default_rng(4)
  box = np.array([120.0, 60.0, 90.0, 160.0], np.float32)
  center, scale = codec.box_to_center_scale(box, 0.75)
  pts = rng.uniform(box[:2] + 10, box[:2] + box[2:] - 10, (17, 2)).astype(np.float32)
  m = codec.crop_affine(center, scale, 0.0, (256, 192))
  maps, _ = codec.encode_heatmaps(codec.apply_affine(m, pts), np.ones(17), (256, 192), (64, 48))
  img_pts, _ = codec.decode_to_image(maps, center, scale)
  px_per_hm = float(scale[0]) * 200 / 48
  assert np.abs(img_pts.numpy() - pts).max() <= 0.5 * px_per_hm + 1e-3


def test_the_codec_object_encodes_and_decodes_with_its_own_constants():
  """HeatmapCodec holds input size, stride, sigma and padding once; the pipeline's targets are its encode."""
  from semipose_tf.data import ops, pipeline

  wide = codec.HeatmapCodec((128, 96), sigma=3.0)
  assert (wide.heatmap_size, wide.stride, codec.HeatmapCodec().sigma) == ((32, 24), 4, codec.SIGMA)
  joints = tf.constant([[40.0, 52.0]])
  maps, weights = wide.encode(joints, tf.ones([1]))
  narrow, _ = codec.HeatmapCodec((128, 96)).encode(joints, tf.ones([1]))
  assert maps.shape == (32, 24, 1) and float(weights[0]) == 1.0
  assert int(tf.reduce_sum(tf.cast(maps > 0, tf.int32))) > int(tf.reduce_sum(tf.cast(narrow > 0, tf.int32)))
  center, scale = wide.center_scale(tf.constant([0.0, 0.0, 96.0 / 1.25, 128.0 / 1.25]))
  crop_to_image = codec.invert_affine(codec.crop_affine(center, scale, 0.0, wide.input_size))
  pts, _ = wide.decode(maps[None], center[None], scale[None])
  np.testing.assert_allclose(pts.numpy()[0], codec.apply_affine(crop_to_image, joints).numpy(), atol=1.0)
  ex = ops.make_targets({"joints": joints, "visible": tf.ones([1])}, pipeline.PipelineConfig(wide).codec)
  np.testing.assert_array_equal(ex["heatmaps"].numpy(), maps.numpy())
  assert codec.Geometry is codec.HeatmapCodec  # The earlier name still works.


def test_codec_in_tf_function_and_dataset():
  f = tf.function(lambda hm: codec.decode_heatmaps(hm))
  hm = tf.random.uniform((2, 3, 16, 12, 5))
  c1, s1 = f(hm)
  c2, s2 = codec.decode_heatmaps(hm)
  np.testing.assert_allclose(c1.numpy(), c2.numpy())
  assert c1.shape == (2, 3, 5, 2) and s1.shape == (2, 3, 5)
  ds = tf.data.Dataset.from_tensor_slices(np.ones((4, 17, 2), np.float32) * 40).map(
    lambda p: codec.encode_heatmaps(p, tf.ones([17]), (256, 192), (64, 48))
  )
  for maps, w in ds:
    assert maps.shape == (64, 48, 17)


def test_resample_affine_matches_warp_op_and_compiles_under_xla():
  rng = np.random.default_rng(5)
  images = rng.uniform(-2, 2, (3, 40, 30, 4)).astype(np.float32)
  m = codec.crop_affine(
    rng.uniform(10, 30, (3, 2)), rng.uniform(0.1, 0.2, (3, 2)), rng.uniform(-60, 60, 3), (32, 24), rng.random(3) < 0.5
  )
  ref = codec.warp_image(images, m, (32, 24)).numpy()
  ours = codec.resample_affine(images, m, (32, 24)).numpy()
  np.testing.assert_allclose(ours, ref, atol=1e-4)
  xla = tf.function(lambda a, b: codec.resample_affine(a, b, (32, 24)), jit_compile=True)
  np.testing.assert_allclose(xla(images, m).numpy(), ref, atol=1e-4)
