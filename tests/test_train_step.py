"""The training step, piece by piece: mask count, teacher stop-gradient, strong-view geometry, cutout, mixup."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from tiny_nets import TinyPoseNet

from semipose_tf import codec
from semipose_tf.augment import cutout, mixup, strong
from semipose_tf.method_config import Masking, MethodConfig, Mixup, StrongView
from semipose_tf.train.losses import global_average, joints_mse
from semipose_tf.train.teacher_student import SemiSupervisedPose


def _maps_with_peaks(peaks, h=8, w=6):
  """[B, h, w, K] heatmaps whose channel maxima are ``peaks`` [B, K]."""
  peaks = np.asarray(peaks, np.float32)
  maps = np.zeros(peaks.shape[:1] + (h, w) + peaks.shape[1:], np.float32)
  maps[:, 3, 2, :] = peaks
  maps[:, 4, 2, :] = peaks * 0.5
  return maps


# Hand-computed with Algorithm 1 (gamma 0.55, m 8, m_min 2, tau 0.05):
#  a) K=17, peaks 1.0 .. 0.1: Hmax 1, Hmin .1, r < .55 <=> R > .505: 11 joints -> floor(11 * 8 / 17) = 5.
#  b) K=17, all 0.7: Hmax == Hmin -> every r = 0 -> n = 17 -> 8.
#  c) K=17, max 0.04 < tau: extremely hard -> m_min = 2.
#  d) K=17, one confident joint 0.9, the rest 0.1: n = 1 -> floor(8 / 17) = 0 -> clipped to 2.
#  e) K=16, 10 joints at 0.8, 6 at 0.2: Hmax .8, Hmin .2, r(0.8) = 0 -> n = 10 -> floor(80 / 16) = 5.
#  f) K=16, 9 joints at 0.8: n = 9 -> floor(72 / 16) = 4.
#  g) K=16, all 0.04 except one 0.049 (< tau): 2.
CASES_17 = [
  ([1.0, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55, 0.51, 0.5, 0.4, 0.3, 0.2, 0.15, 0.1], 5),
  ([0.7] * 17, 8),
  ([0.04] * 16 + [0.02], 2),
  ([0.9] + [0.1] * 16, 2),
]
CASES_16 = [([0.8] * 10 + [0.2] * 6, 5), ([0.8] * 9 + [0.2] * 7, 4), ([0.04] * 15 + [0.049], 2)]


@pytest.mark.parametrize("cases", [CASES_17, CASES_16], ids=["K17", "K16"])
def test_adaptive_count_against_hand_computed_values(cases):
  peaks = [p for p, _ in cases]
  expected = [n for _, n in cases]
  maps = _maps_with_peaks(peaks)
  eager = cutout.adaptive_mask_count(maps, Masking()).numpy()
  graph = tf.function(lambda h: cutout.adaptive_mask_count(h, Masking()))(tf.constant(maps)).numpy()  # As a graph.
  np.testing.assert_array_equal(eager, expected)
  np.testing.assert_array_equal(graph, expected)


def test_adaptive_count_bounds_and_direction():
  rng = np.random.default_rng(0)
  maps = rng.uniform(0, 1, (64, 8, 6, 17)).astype(np.float32) ** rng.uniform(0.2, 8, (64, 1, 1, 1))
  counts = cutout.adaptive_mask_count(maps, Masking(mask_max=8, mask_min=2)).numpy()
  assert counts.min() >= 2 and counts.max() <= 8
  # More confident joints never mean fewer masks: easy samples get more.
  easy = _maps_with_peaks([[0.9] * 15 + [0.1] * 2])
  hard = _maps_with_peaks([[0.9] * 3 + [0.1] * 14])
  assert int(cutout.adaptive_mask_count(easy, Masking())[0]) > int(cutout.adaptive_mask_count(hard, Masking())[0])


def test_cutout_rectangles_follow_count_and_teacher_argmax():
  rng = np.random.default_rng(1)
  b, k, h, w = 6, 17, 256, 192
  images = np.ones((b, h, w, 3), np.float32)
  centers = rng.uniform([30, 30], [w - 30, h - 30], (b, k, 2)).astype(np.float32)
  num = tf.constant([0, 2, 3, 5, 8, 17], tf.int32)
  masked, boxes, selected = cutout.joint_cutout(images, centers, num, tf.constant([4, 2], tf.int64), Masking())
  selected, boxes, masked = selected.numpy(), boxes.numpy(), masked.numpy()
  np.testing.assert_array_equal(selected.sum(1), num.numpy())  # One rectangle per chosen joint.
  d = np.abs(boxes[..., :2] - centers)[selected]
  assert d.max() <= 3 * 10.0  # Centred within 3 jitter sigmas (10 px at 256x192) of the teacher argmax.
  half = boxes[..., 2:][selected]
  assert half.min() >= 10 and half.max() <= 19
  ys, xs = np.mgrid[0:h, 0:w]
  for i in range(b):  # The masked pixels are exactly the union of the chosen rectangles.
    union = np.zeros((h, w), bool)
    for j in np.nonzero(selected[i])[0]:
      cx, cy, hw, hh = boxes[i, j]
      union |= (np.abs(xs - cx) <= hw) & (np.abs(ys - cy) <= hh)
    np.testing.assert_array_equal(masked[i, ..., 0] == 0, union)


def test_strong_view_targets_line_up_with_the_image():
  """A dot at a known keypoint: after the strong affine, the image dot, the re-warped keypoint and the argmax of
  the re-warped teacher heatmap agree (within 1 heatmap pixel)."""
  b, size, hm = 8, (256, 192), (64, 48)
  rng = np.random.default_rng(2)
  kp = rng.uniform([70, 90], [122, 166], (b, 1, 2)).astype(np.float32)  # Central: stays inside after the warp.
  images = np.zeros((b,) + size + (1,), np.float32)
  for i in range(b):
    x, y = kp[i, 0].round().astype(int)
    images[i, y - 1 : y + 2, x - 1 : x + 2] = 1.0
  teacher, _ = codec.encode_heatmaps(kp, np.ones((b, 1)), size, hm, subpixel=True)
  m_in, m_hm, params = strong.strong_affines(tf.constant([3, 5], tf.int64), b, size, hm, StrongView())
  assert np.any(params["rotation"].numpy() != 0)
  x_s, targets = strong.apply_strong(images, teacher, m_in, m_hm)
  warped_kp = codec.apply_affine(m_hm, kp / 4.0).numpy()
  argmax, _ = codec.decode_heatmaps(targets)
  assert np.abs(argmax.numpy() - warped_kp).max() <= 1.0
  dots = x_s.numpy()[..., 0].reshape(b, -1).argmax(1)
  dot_xy = np.stack([dots % size[1], dots // size[1]], -1)
  assert np.abs(dot_xy - codec.apply_affine(m_in, kp).numpy()[:, 0]).max() <= 2.0
  assert np.abs(dot_xy / 4.0 - warped_kp[:, 0]).max() <= 1.0


def _model(method="adaptive", masking=None, mixup=None, **kw):
  keras.utils.set_random_seed(0)
  net = TinyPoseNet(17, (64, 64, 3))
  config = MethodConfig(method, masking=masking or Masking(), mixup=mixup or Mixup(), **kw)
  model = SemiSupervisedPose(net, config)
  model.compile(optimizer=keras.optimizers.SGD(1.0))
  return model


def _batch(seed=0, b=4):
  rng = np.random.default_rng(seed)
  return {
    "labeled": {
      "image": rng.normal(size=(b, 64, 64, 3)).astype(np.float32),
      "heatmaps": rng.uniform(0, 1, (b, 16, 16, 17)).astype(np.float32),
      "weights": np.ones((b, 17), np.float32),
    },
    "unlabeled": {"image": rng.normal(size=(b, 64, 64, 3)).astype(np.float32)},
  }


def test_teacher_pass_does_not_move_the_weights():
  """Only the consistency loss on (zero labeled weights, no mixup): the step's update equals the gradient computed
  by hand with the teacher heatmaps as constants."""
  model = _model("adaptive")
  data = _batch()
  data["labeled"]["weights"][:] = 0.0
  before = [v.numpy().copy() for v in model.trainable_variables]
  net = model.net
  x_w = tf.constant(data["unlabeled"]["image"])
  seeds = model.step_seeds()
  h_t = tf.constant(net(x_w, training=True).numpy())  # A constant, by construction.
  counts = model.mask_count(h_t)
  views = model.strong_views(x_w, h_t, counts, seeds[0])
  x_s, h_s = views["strong"], views["targets"]
  with tf.GradientTape() as tape:
    loss = global_average(joints_mse(net(x_s, training=True), h_s))
  grads = tape.gradient(loss, model.trainable_variables)
  logs = model.train_step(data)
  assert float(logs["loss_s"]) == 0.0 and float(logs["loss_u"]) > 0
  for b0, v, g in zip(before, model.trainable_variables, grads):
    np.testing.assert_allclose(b0 - v.numpy(), g.numpy(), rtol=1e-4, atol=1e-7)  # SGD, lr 1: delta = grad.


def test_oracle_teacher_uses_the_ground_truth_and_its_joint_weights():
  """The diagnostic "labels" teacher: the strong branch learns from the unlabeled stream's own heatmaps, and joints
  of weight 0 contribute nothing; the update equals the gradient computed by hand."""
  model = _model("oracle_single")
  data = _batch()
  data["labeled"]["weights"][:] = 0.0
  rng = np.random.default_rng(5)
  truth = rng.uniform(0, 1, (4, 16, 16, 17)).astype(np.float32)
  weights = np.ones((4, 17), np.float32)
  weights[:, :6] = 0.0
  data["unlabeled"].update(heatmaps=truth, weights=weights)
  h_t, w_t = model.targets(0, data["unlabeled"])
  np.testing.assert_array_equal(h_t, truth)
  np.testing.assert_array_equal(w_t, weights)
  before = [v.numpy().copy() for v in model.trainable_variables]
  x_w = tf.constant(data["unlabeled"]["image"])
  views = model.strong_views(x_w, tf.constant(truth), model.mask_count(truth), model.step_seeds()[0])
  x_s, h_s = views["strong"], views["targets"]
  with tf.GradientTape() as tape:
    pred = model.net(x_s, training=True)
    loss = global_average(joints_mse(pred, h_s, weights))
  grads = tape.gradient(loss, model.trainable_variables)
  # Zero-weight joints: their predictions get no gradient.
  with tf.GradientTape() as tape:
    tape.watch(pred)
    per_joint = tape.gradient(global_average(joints_mse(pred, h_s, weights)), pred)
  assert float(tf.reduce_max(tf.abs(per_joint[..., :6]))) == 0.0
  logs = model.train_step(data)
  assert float(logs["loss_s"]) == 0.0 and float(logs["loss_u"]) > 0
  for b0, v, g in zip(before, model.trainable_variables, grads):
    np.testing.assert_allclose(b0 - v.numpy(), g.numpy(), rtol=1e-4, atol=1e-7)
  del data["unlabeled"]["heatmaps"]
  with pytest.raises(ValueError, match="oracle_single.*ground-truth targets"):
    model.train_step(data)


def test_mixed_forward_mixes_at_the_drawn_location_only():
  """One pass over the stages with a tf.where per candidate equals head -> mix -> tail at the drawn location, in
  value and in gradient."""
  keras.utils.set_random_seed(0)
  net = TinyPoseNet(17, (64, 64, 3), batch_norm=True)
  x = tf.constant(_batch()["unlabeled"]["image"])
  lam, perm = tf.constant(0.3), tf.constant([2, 0, 3, 1])
  locations = ("image", "layer3", "deconv")
  for j, loc in enumerate(locations):
    head, tail = net.split(loc)
    with tf.GradientTape(persistent=True) as tape:
      ours = mixup.mixed_forward(net, x, lam, perm, tf.constant(j), locations)
      ref = tail(mixup.mix(head(x, training=True), lam, perm), training=True)
      l_ours, l_ref = tf.reduce_sum(ours**2), tf.reduce_sum(ref**2)
    np.testing.assert_allclose(ours.numpy(), ref.numpy(), rtol=1e-5, atol=1e-6)
    for a, b in zip(tape.gradient(l_ours, net.trainable_variables), tape.gradient(l_ref, net.trainable_variables)):
      np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5)
  graph = tf.function(mixup.mixed_forward, reduce_retracing=True)
  for j in range(len(locations)):  # A traced step takes the location as a tensor.
    np.testing.assert_allclose(
      graph(net, x, lam, perm, tf.constant(j), locations).numpy(),
      mixup.mixed_forward(net, x, lam, perm, tf.constant(j), locations).numpy(),
      rtol=1e-5,
      atol=1e-6,
    )


@pytest.mark.parametrize("location", ["image", "stem", "layer1", "layer2", "layer3", "deconv", "final"])
def test_mixup_with_lambda_one_is_the_plain_consistency_loss(location):
  model = _model("plus", mixup=Mixup(lam=1.0, locations=(location,)))
  x_w = tf.constant(_batch()["unlabeled"]["image"])
  h_t, _ = model.targets(0, {"image": x_w})
  loss, lam, where = model.mixup_loss(model.net, x_w, h_t, tf.constant([1, 2], tf.int64))
  plain = joints_mse(model.net(x_w, training=True), h_t)
  np.testing.assert_allclose(loss.numpy(), plain.numpy(), rtol=1e-5, atol=1e-9)
  assert float(lam) == 1.0 and int(where) == 0
  # A real mix at the same location runs and changes the loss.
  model_mix = _model("plus", mixup=Mixup(lam=0.3, locations=(location,)))
  mixed, _, _ = model_mix.mixup_loss(model_mix.net, x_w, h_t, tf.constant([1, 2], tf.int64))
  assert np.isfinite(mixed.numpy()).all() and not np.allclose(mixed.numpy(), plain.numpy())


@pytest.mark.slow
def test_mix_location_drawn_per_step_and_lambda_beta():
  model = _model("plus", mixup=Mixup(locations=("image", "layer3")))
  where = [
    int(
      model.mixup_loss(model.net, tf.zeros((2, 64, 64, 3)), tf.zeros((2, 16, 16, 17)), tf.constant([s, 0], tf.int64))[2]
    )
    for s in range(12)
  ]
  assert set(where) == {0, 1}
  for alpha in (1.0, 0.4, 2.0):  # Beta(a, a): mean 1/2, variance 1 / (4 (2a + 1)).
    lams = np.array([float(mixup.sample_lambda(tf.constant([s, 1], tf.int64), alpha)) for s in range(600)])
    assert 0 <= lams.min() and lams.max() <= 1 and abs(lams.mean() - 0.5) < 0.04
    assert abs(lams.var() - 1 / (4 * (2 * alpha + 1))) < 0.015, (alpha, lams.var())


@pytest.mark.parametrize("method", ["supervised", "affine", "affine_mixup", "single", "adaptive", "plus"])
def test_every_method_steps(method):
  model = _model(method)
  logs = model.train_step(_batch())
  for k in ("total_loss", "loss_s", "loss_u", "loss_m", "mask_count", "mix_lambda", "mix_location", "lr"):
    assert np.isfinite(float(logs[k])), k
  if method == "supervised":
    assert float(logs["loss_u"]) == 0.0
  if method == "single":
    assert float(logs["mask_count"]) == 5.0
  if method in ("plus", "affine_mixup"):
    assert float(logs["loss_m"]) > 0.0
  else:
    assert float(logs["loss_m"]) == 0.0


def test_dual_and_pseudopose_step():
  keras.utils.set_random_seed(1)
  net, net2 = TinyPoseNet(17, (64, 64, 3)), TinyPoseNet(17, (64, 64, 3))
  model = SemiSupervisedPose(net, "dual", net2=net2)
  model.compile(optimizer=keras.optimizers.SGD(0.1))
  w1 = [v.numpy().copy() for v in net.trainable_variables]
  w2 = [v.numpy().copy() for v in net2.trainable_variables]
  logs = model.train_step(_batch())
  assert len(model.trainable_variables) == 2 * len(net.trainable_variables)
  assert any(not np.array_equal(a, b.numpy()) for a, b in zip(w1, net.trainable_variables))
  assert any(not np.array_equal(a, b.numpy()) for a, b in zip(w2, net2.trainable_variables))
  assert float(logs["mask_count"]) == 5.0
  frozen = TinyPoseNet(17, (64, 64, 3))
  frozen_w = [v.numpy().copy() for v in frozen.weights]
  model = SemiSupervisedPose(TinyPoseNet(17, (64, 64, 3)), "pseudopose", frozen_teacher=frozen)
  model.compile(optimizer=keras.optimizers.SGD(0.1))
  model.train_step(_batch())
  assert all(np.array_equal(a, b.numpy()) for a, b in zip(frozen_w, frozen.weights))  # The teacher stays frozen.
  with pytest.raises(ValueError, match="needs a frozen supervised network"):
    SemiSupervisedPose(TinyPoseNet(17, (64, 64, 3)), "pseudopose")


def test_bad_settings():
  with pytest.raises(ValueError, match="unknown method 'nope'"):
    _model("nope")
  with pytest.raises(ValueError, match="Mixup.locations: 'layer9' is not a split point"):
    _model("plus", mixup=Mixup(locations=("layer9",)))
  with pytest.raises(ValueError, match="MethodConfig.teacher_bn_mode must be one of"):
    _model("plus", teacher_bn_mode="eval")
  with pytest.raises(ValueError, match=r"Masking.fixed_count must be a whole number between 1 and mask_max \(8.*got 9"):
    _model("single", masking=Masking(fixed_count=9))  # Counts above mask_max fell outside the histogram silently.
  with pytest.raises(ValueError, match="Masking.fixed_count must be a whole number between"):
    _model("single", masking=Masking(fixed_count=0))
  with pytest.raises(ValueError, match="Masking.fixed_count must be at most the 4 joints"):
    SemiSupervisedPose(TinyPoseNet(4, (64, 64, 3)), MethodConfig("single"))


def test_mask_histogram_accumulates():
  model = _model("single")
  model.train_step(_batch())
  model.train_step(_batch(1))
  bins = model.reset_mask_histogram()
  assert bins[5] == 8 and sum(bins) == 8
  assert sum(model.reset_mask_histogram()) == 0


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_step(policy):
  keras.utils.set_random_seed(0)
  model = SemiSupervisedPose(TinyPoseNet(17, (64, 64, 3), dtype=policy), "plus")
  opt = keras.optimizers.Adam(1e-3)
  if policy == "mixed_float16":
    opt = keras.optimizers.LossScaleOptimizer(opt)
  model.compile(optimizer=opt)
  before = [v.numpy().copy() for v in model.trainable_variables]
  logs = model.train_step(_batch())
  assert all(np.isfinite(float(v)) for v in logs.values())
  assert all(v.dtype == tf.float32 for v in model.trainable_variables)
  assert any(not np.array_equal(a, v.numpy()) for a, v in zip(before, model.trainable_variables))


@pytest.mark.slow
def test_jit_compiled_step_matches_the_plain_one():
  data = _batch()
  plain = _model("plus")
  jit = _model("plus")
  logs_plain = tf.function(plain.train_step)(data)
  logs_jit = tf.function(jit.train_step, jit_compile=True)(data)
  for k in ("total_loss", "loss_u", "loss_m", "mask_count", "mix_lambda"):
    # XLA fuses and reorders float arithmetic: equal up to rounding, not bit for bit.
    np.testing.assert_allclose(float(logs_jit[k]), float(logs_plain[k]), rtol=2e-3, atol=1e-7, err_msg=k)
  for a, b in zip(plain.trainable_variables, jit.trainable_variables):
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-3, atol=1e-5)


def test_nan_guard_stops_with_a_message():
  from semipose_tf.train.callbacks import NaNGuard

  model = _model("plus")
  guard = NaNGuard()
  guard.set_model(model)
  guard.on_epoch_begin(2)
  guard.on_train_batch_end(4, {"total_loss": 0.1, "loss_u": 0.2})
  assert not model.stop_training and guard.message is None
  guard.on_train_batch_end(5, {"total_loss": float("nan"), "loss_u": 0.2})
  assert model.stop_training
  assert "epoch 3, step 6" in guard.message and "total_loss" in guard.message and "learning rate" in guard.message


def test_step_randomness_is_device_and_xla_independent():
  from semipose_tf.augment import replica_random as rr

  seed = tf.constant([3, 9], tf.int64)
  u = rr.hash_uniform(seed, [100000]).numpy()
  n = rr.hash_normal(seed, [100000]).numpy()
  assert 0 <= u.min() and u.max() < 1 and abs(u.mean() - 0.5) < 0.005 and abs(u.var() - 1 / 12) < 0.002
  assert abs(n.mean()) < 0.02 and abs(n.std() - 1) < 0.02
  assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 0.02
  ints = rr.integers(seed, tf.constant(20000), [], 10, 20).numpy()
  assert ints.min() == 10 and ints.max() == 19
  xla = tf.function(lambda: rr.hash_normal(seed, [64]), jit_compile=True)()
  np.testing.assert_allclose(xla.numpy(), rr.hash_normal(seed, [64]).numpy(), atol=1e-6)
  assert not np.allclose(rr.hash_uniform(seed, [8]).numpy(), rr.hash_uniform(tf.constant([3, 10]), [8]).numpy())


def test_logged_learning_rate_is_the_steps_own():
  from semipose_tf.train.schedules import MultiStepSchedule

  keras.utils.set_random_seed(0)
  model = SemiSupervisedPose(TinyPoseNet(17, (64, 64, 3)), "supervised")
  model.compile(optimizer=keras.optimizers.SGD(MultiStepSchedule(1.0, [1], steps_per_epoch=2)))
  rates = [float(model.train_step(_batch())["lr"]) for _ in range(4)]
  assert rates == pytest.approx([1.0, 1.0, 0.1, 0.1])


def test_the_tensorboard_pictures_leave_the_model_as_they_found_it(tmp_path):
  """The pictures' teacher pass runs batch norm in training mode (teacher_bn_mode "train"); it must not move the
  moving statistics that the epoch's evaluation measured and that final.keras keeps."""
  from semipose_tf.keypoints import COCO17
  from semipose_tf.train.callbacks import SemiSupervisedSummaries

  keras.utils.set_random_seed(0)
  model = SemiSupervisedPose(TinyPoseNet(17, (64, 64, 3), batch_norm=True), "plus")
  model.compile(optimizer=keras.optimizers.SGD(0.01))
  model.train_step(_batch())
  before = [v.numpy().copy() for v in model.non_trainable_variables]
  assert any("moving_variance" in v.path for v in model.net.non_trainable_variables)
  probe = {"image": np.random.default_rng(1).normal(2.0, 3.0, (4, 64, 64, 3)).astype(np.float32)}
  made = []  # The batch is made on first use, as a run passes it (building its stream costs a trace).
  summaries = SemiSupervisedSummaries(str(tmp_path), lambda: made.append(1) or probe, COCO17)
  summaries.set_model(model)
  assert made == []
  # The teacher pass alone does move them (what the guard is for) ...
  model.targets(0, {"image": tf.constant(probe["image"])})
  assert any(not np.array_equal(a, v.numpy()) for a, v in zip(before, model.non_trainable_variables))
  for v, a in zip(model.non_trainable_variables, before):
    v.assign(a)
  # ... the pictures do not, and they are drawn.
  sheet = summaries.pictures()
  assert sheet.shape == (4, 64, 3 * 64, 3) and sheet.dtype == np.uint8
  assert summaries.pictures().shape == sheet.shape and made == [1]  # Made once.
  for a, v in zip(before, model.non_trainable_variables):
    np.testing.assert_array_equal(a, v.numpy(), err_msg=v.path)


@pytest.mark.parametrize("method", ["plus", "dual"])
def test_the_training_model_round_trips_its_config_and_a_keras_file(method, tmp_path):
  """Keras's convention: constructor arguments = get_config; from_config and a saved .keras give the same model."""
  from semipose_tf.models import build_pose_model

  keras.utils.set_random_seed(1)
  make = lambda: build_pose_model("resnet18", (64, 64), 5, width=8, deconv_filters=(8, 8, 8))  # noqa: E731
  config = MethodConfig(method, masking=Masking(mask_max=6), mixup=Mixup(locations=("image", "layer3")))
  model = SemiSupervisedPose(make(), config, net2=make() if method == "dual" else None, seed=7)
  again = SemiSupervisedPose.from_config(model.get_config())
  assert again.method_config == config and again.seed == 7 and again.get_config() == model.get_config()
  assert (again.net2 is None) == (method != "dual") and again.net.get_config() == model.net.get_config()
  model.save(tmp_path / "model.keras")
  loaded = keras.models.load_model(tmp_path / "model.keras")
  assert isinstance(loaded, SemiSupervisedPose) and loaded.method_config == config
  assert len(loaded.weights) == len(model.weights)
  for a, b in zip(loaded.weights, model.weights):
    np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
  x = np.random.default_rng(0).normal(size=(2, 64, 64, 3)).astype(np.float32)
  np.testing.assert_array_equal(loaded(x).numpy(), model(x).numpy())
