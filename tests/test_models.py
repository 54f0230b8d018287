"""Pose networks: parameter counts, split points, config / .keras round trips, mixed precision, a train step."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from semipose_tf.models import HRNet, SimpleBaseline, build_pose_model
from semipose_tf.models.factory import count_params

# Reference parameter counts (PyTorch reference code, 17 joints): SimpleBaseline-R18 15.4M, R50 34.0M, HRNet-W32
# 28.5M.
REFERENCE_PARAMS = {"resnet18": 15.4e6, "resnet50": 34.0e6, "hrnet_w32": 28.5e6}


@pytest.mark.parametrize("backbone", sorted(REFERENCE_PARAMS))
def test_parameter_counts_and_output_shape(backbone):
  model = build_pose_model(backbone, (256, 192), 17)
  n = count_params(model)
  print(f"{backbone}: {n / 1e6:.2f}M trainable parameters (reference {REFERENCE_PARAMS[backbone] / 1e6:.1f}M)")
  assert abs(n - REFERENCE_PARAMS[backbone]) / REFERENCE_PARAMS[backbone] < 0.005
  assert model.output_shape == (None, 64, 48, 17)


def _tiny_models():
  # Small inputs keep the suite fast; the topology is the full one.
  return [SimpleBaseline(18, 5, (64, 64, 3)), HRNet(8, 5, (64, 64, 3))]


@pytest.mark.slow
@pytest.mark.parametrize("model", _tiny_models(), ids=["simple_baseline_r18", "hrnet_w8"])
def test_split_points_compose_to_the_model(model):
  x = np.random.default_rng(0).normal(size=(2,) + tuple(model.input_shape[1:])).astype("float32")
  y = model(x, training=False).numpy()
  ours = {id(v) for v in model.trainable_variables}
  assert model.split_points[0] == "image"
  for point in model.split_points:
    head, tail = model.split(point)
    feats = head(x, training=False)
    np.testing.assert_allclose(tail(feats, training=False).numpy(), y, atol=1e-5, err_msg=point)
    parts = [id(v) for v in head.trainable_variables] + [id(v) for v in tail.trainable_variables]
    assert len(parts) == len(set(parts)) and set(parts) == ours, point  # The model's own, none duplicated.
  with pytest.raises(ValueError, match="unknown split point 'layer9'"):
    model.split("layer9")


def test_split_before_layer3_is_the_output_of_layer2():
  model = SimpleBaseline(18, 5, (64, 64, 3))
  feats = model.head_to("layer3")(np.zeros((1, 64, 64, 3), np.float32))
  assert tuple(feats.shape) == (1, 8, 8, 128)  # layer2: stride 8, 128 channels.
  hr = HRNet(8, 5, (64, 64, 3))
  f = hr.head_to("stage4")(np.zeros((1, 64, 64, 3), np.float32))
  assert [tuple(t.shape) for t in f] == [(1, 16, 16, 8), (1, 8, 8, 16), (1, 4, 4, 32)]


def test_resnet_width_scales_every_stage():
  small = build_pose_model("resnet18", (64, 64), 17, width=16, deconv_filters=(32, 32, 32))
  assert small.name == "simple_baseline_r18_w16" and small.get_config()["width"] == 16
  feats = small.head_to("deconv")(np.zeros((1, 64, 64, 3), np.float32))
  assert tuple(feats.shape) == (1, 2, 2, 128)  # layer4 at width 16: 8 x 16 channels.
  # Every backbone convolution has 1/4 of the input and 1/4 of the output channels: 1/16 of the weights.
  full = build_pose_model("resnet18", (64, 64), 17)
  backbone = lambda m: sum(count_params(m.get_layer(n)) for n in ("stem", "layer1", "layer2", "layer3", "layer4"))
  ratio = backbone(full) / backbone(small)
  assert 15.5 < ratio < 16.5, ratio
  with pytest.raises(ValueError, match="width must be a positive"):
    build_pose_model("resnet18", (64, 64), 17, width=0)
  with pytest.raises(ValueError, match="applies to ResNet backbones"):
    build_pose_model("hrnet_w32", (64, 64), 17, width=16)
  with pytest.raises(ValueError, match="has none"):
    build_pose_model("hrnet_w32", (64, 64), 17, deconv_filters=(16, 16))


def test_a_registered_backbone_builds_by_name_and_names_are_not_taken_twice(monkeypatch):
  from semipose_tf.models import factory
  from semipose_tf.models.factory import Backbone, backbones, register_backbone

  # The registry is process-wide: the test's entry goes when the test ends, so no other test's error lists it.
  monkeypatch.setattr(factory, "_REGISTRY", dict(factory._REGISTRY))

  assert backbones()[:2] == ("resnet18", "resnet34") and "efficientnet_lite4" in backbones()
  name = "resnet18_test_registry"
  register_backbone(name, Backbone(SimpleBaseline, (18,), (32, 32), takes_width=True))
  net = build_pose_model(name, (64, 64), 5, width=8)
  assert net.get_config()["deconv_filters"] in ([32, 32], (32, 32)) and net.get_config()["width"] == 8
  with pytest.raises(ValueError, match="registered already"):
    register_backbone("resnet18", Backbone(SimpleBaseline, (18,)))
  with pytest.raises(ValueError, match="unknown backbone 'resnet19'"):
    build_pose_model("resnet19", (64, 64), 5)


@pytest.mark.parametrize(
  "model",
  _tiny_models() + [SimpleBaseline(18, 5, (64, 64, 3), (32, 32), width=8)],
  ids=["simple_baseline_r18", "hrnet_w8", "simple_baseline_r18_w8"],
)
@pytest.mark.slow
def test_config_and_keras_file_round_trip(model, tmp_path):
  x = np.random.default_rng(1).normal(size=(2,) + tuple(model.input_shape[1:])).astype("float32")
  y = model(x, training=False).numpy()
  clone = type(model).from_config(model.get_config())
  assert clone.get_config() == model.get_config()
  assert count_params(clone) == count_params(model)
  path = str(tmp_path / "model.keras")
  model.save(path)
  loaded = keras.models.load_model(path)
  assert type(loaded) is type(model) and loaded.get_config() == model.get_config()
  np.testing.assert_allclose(loaded(x, training=False).numpy(), y, atol=1e-6)
  assert loaded.split_points == model.split_points


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision(policy):
  model = build_pose_model("resnet18", (64, 64), 5, dtype=policy)
  out = model(np.zeros((2, 64, 64, 3), np.float32), training=False)
  assert out.dtype == tf.float32
  assert model.get_layer("layer1").get_layer("stack0_block0_1_conv").compute_dtype == policy.split("_")[1]
  assert all(v.dtype == tf.float32 for v in model.trainable_variables)  # Variables stay float32.
  head, tail = model.split("layer3")
  assert tail(head(np.zeros((1, 64, 64, 3), np.float32))).dtype == tf.float32
  hr = HRNet(8, 5, (64, 64, 3), dtype=policy)
  assert hr(np.zeros((1, 64, 64, 3), np.float32)).dtype == tf.float32


def test_forward_backward_r18_256x192():
  model = build_pose_model("resnet18")
  x = tf.random.normal((2, 256, 192, 3))
  target = tf.random.uniform((2, 64, 48, 17))
  with tf.GradientTape() as tape:
    loss = tf.reduce_mean(tf.square(model(x, training=True) - target))
  grads = tape.gradient(loss, model.trainable_variables)
  assert all(g is not None for g in grads) and np.isfinite(loss.numpy())
  assert any(float(tf.reduce_sum(tf.abs(g))) > 0 for g in grads)


def test_head_initialization_follows_the_reference():
  model = SimpleBaseline(18, 17, (64, 64, 3))
  final = model.get_layer("final").get_layer("final_conv")
  assert abs(float(np.std(final.kernel.numpy())) - 0.001) < 3e-4
  np.testing.assert_array_equal(final.bias.numpy(), 0.0)
  deconv = model.get_layer("deconv").get_layer("deconv0")
  assert deconv.bias is None and abs(float(np.std(deconv.kernel.numpy())) - 0.001) < 2e-4


def test_unknown_backbone():
  with pytest.raises(ValueError, match="unknown backbone 'vgg16'"):
    build_pose_model("vgg16")
  with pytest.raises(ValueError, match="unknown backbone 'resnet20'"):
    build_pose_model("resnet20")


def test_factory_bound_in_gin():
  import gin

  from semipose_tf import configurable

  gin.clear_config()
  try:
    configurable.parse_gin(
      params=[
        'build_pose_model.backbone = "hrnet_w32"',
        "build_pose_model.input_size = (64, 64)",
        "build_pose_model.num_keypoints = 16",
      ]
    )
    model = configurable.build_pose_model()
  finally:
    gin.clear_config()
  assert model.name == "hrnet_w32" and model.output_shape == (None, 16, 16, 16)


_INIT_HASH = """
import hashlib, sys
from semipose_tf.console import quiet_start; quiet_start()
import keras, numpy as np
from semipose_tf.models import build_pose_model
for seed in sys.argv[1:]:
  keras.utils.set_random_seed(int(seed))
  h = hashlib.sha1()
  for backbone, kw in (("resnet18", {"width": 8, "deconv_filters": (16, 16)}), ("hrnet_w8", {}),
                       ("efficientnet_lite0", {"deconv_filters": (16, 16)})):
    for w in build_pose_model(backbone, (64, 64), 5, **kw).get_weights():
      h.update(np.ascontiguousarray(w).tobytes())
  print(h.hexdigest())
"""


@pytest.mark.slow
def test_initial_weights_follow_the_seed_in_every_process():
  """The seed fixes the initialization in a new process too (the initializers' seeds were drawn at import)."""
  import subprocess
  import sys

  run = lambda *seeds: subprocess.run(
    [sys.executable, "-c", _INIT_HASH, *map(str, seeds)], capture_output=True, text=True, check=True
  ).stdout.split()
  three, four = run(3, 4)
  assert run(3) == [three] and four != three


def test_same_shaped_kernels_start_different():
  """One initializer per layer: a shared Keras 3 initializer gives every layer the same values."""
  keras.utils.set_random_seed(0)
  model = build_pose_model("resnet18", (64, 64), 5, width=8, deconv_filters=(16, 16, 16))
  layer1, deconv = model.get_layer("layer1"), model.get_layer("deconv")
  a, b = (layer1.get_layer(n).kernel.numpy() for n in ("stack0_block0_1_conv", "stack0_block1_1_conv"))
  assert a.shape == b.shape and np.abs(a - b).max() > 0.1
  d1, d2 = (deconv.get_layer(n).kernel.numpy() for n in ("deconv1", "deconv2"))
  assert d1.shape == d2.shape and np.abs(d1 - d2).max() > 1e-4


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_fused_batch_norm_computes_keras_batch_norm(policy):
  """semipose_tf's BatchNormalization (TensorFlow's fused kernel) against Keras's layer with the same weights:
  outputs in training and inference mode, gradients for the input, gamma and beta, and the moving statistics after
  an update (Keras averages the biased batch variance; the fused kernel returns the unbiased one)."""
  from semipose_tf.models.batch_norm import BatchNormalization

  rng = np.random.default_rng(0)
  x = tf.constant(rng.normal(2.0, 3.0, (4, 9, 7, 16)).astype(np.float32))
  for epsilon in (1e-5, 1e-3):  # ResNet's (below the 1.001e-5 tf.nn.fused_batch_norm would impose) and Lite's.
    ours = BatchNormalization(epsilon=epsilon, momentum=0.9, dtype=policy)
    theirs = keras.layers.BatchNormalization(epsilon=epsilon, momentum=0.9, dtype=policy)
    for layer in (ours, theirs):
      layer.build(x.shape)
    weights = [rng.normal(size=v.shape).astype(np.float32) for v in theirs.weights]
    weights[3] = np.abs(weights[3]) + 0.1  # A variance.
    results = []
    for layer in (ours, theirs):
      layer.set_weights(weights)
      with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.cast(layer(x, training=True), tf.float32)
        loss = tf.reduce_sum(y**3)
      grads = tape.gradient(loss, [x, layer.gamma, layer.beta])
      moving = [v.numpy() for v in layer.non_trainable_weights]
      results.append([y] + grads + moving + [tf.cast(layer(x, training=False), tf.float32)])
    close = {"float32": 1e-5, "mixed_bfloat16": 1e-5}[policy]
    for name, a, b in zip(["train", "dx", "dgamma", "dbeta", "mean", "variance", "inference"], *results):
      a, b = np.asarray(a), np.asarray(b)
      assert np.abs(a - b).max() <= close * max(1.0, np.abs(b).max()), (policy, epsilon, name, np.abs(a - b).max())
  # The moving statistics moved (the update ran), and the fused path was the one taken.
  assert not np.allclose(results[0][4], weights[2])
  assert ours._fusable(x, None) and ours.compute_dtype == ("float32" if policy == "float32" else "bfloat16")


def test_networks_use_the_fused_batch_norm_and_load_keras_batch_norm_checkpoints(tmp_path):
  """Every network builds its batch norm fused, and a .keras file saved with Keras's layer (before the change)
  loads through load_network with the same weights and the same outputs."""
  from semipose_tf.models import batch_norm as fused
  from semipose_tf.models.factory import load_network

  net = build_pose_model("resnet18", (64, 32), 17, width=8, deconv_filters=(16, 16, 16))
  kinds = {type(layer) for layer in net._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)}
  assert kinds == {fused.BatchNormalization}
  # A network saved as before: built with Keras's own layer.
  original = fused.BatchNormalization
  try:
    fused.BatchNormalization = keras.layers.BatchNormalization
    old = build_pose_model("resnet18", (64, 32), 17, width=8, deconv_filters=(16, 16, 16))
  finally:
    fused.BatchNormalization = original
  rng = np.random.default_rng(1)
  old.set_weights(
    [rng.normal(0.0, 0.1, w.shape).astype(np.float32) + (w.name == "moving_variance") for w in old.weights]
  )
  assert {type(layer) for layer in old._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)} == {
    keras.layers.BatchNormalization
  }
  path = str(tmp_path / "old.keras")
  old.save(path)
  loaded = load_network(path)
  assert {type(layer) for layer in loaded._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)} == {
    fused.BatchNormalization
  }
  for a, b in zip(old.weights, loaded.weights):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  x = tf.constant(rng.normal(size=(2, 64, 32, 3)).astype(np.float32))
  np.testing.assert_allclose(loaded(x, training=False), old(x, training=False), rtol=1e-4, atol=1e-6)
