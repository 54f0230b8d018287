"""EfficientNet-Lite pose networks: stages and strides, config / .keras / SavedModel round trips, mixed precision,
and the ImageNet checkpoint: converted Keras backbone + the package's classifier == an independent PyTorch forward."""

import glob
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from semipose_tf import codec, export
from semipose_tf.models import EfficientNetLitePose, build_pose_model, lite_weights, pretrained
from semipose_tf.models.efficientnet_lite import block_plan, round_filters
from semipose_tf.models.factory import count_params

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")
COCO_VAL = os.path.join(SHARED, "coco_mini", "val2017")


def test_stages_have_the_strides_and_channels_of_lite0():
  net = build_pose_model("efficientnet_lite0", (64, 64), 14)
  assert isinstance(net, EfficientNetLitePose) and net.name == "efficientnet_lite0_pose"
  assert net.split_points == ("image", "stem", "layer1", "layer2", "layer3", "layer4", "deconv", "final")
  x = np.zeros((1, 64, 64, 3), np.float32)
  shapes = {p: tuple(net.head_to(p)(x).shape) for p in ("layer1", "layer2", "layer3", "layer4", "deconv")}
  assert shapes == {
    "layer1": (1, 32, 32, 16),
    "layer2": (1, 16, 16, 24),
    "layer3": (1, 8, 8, 40),
    "layer4": (1, 4, 4, 112),
    "deconv": (1, 2, 2, 1280),
  }
  assert net.output_shape == (None, 16, 16, 14)
  # The backbone is Lite0's 3.37M (4.65M with the 1000-way classifier): 16 blocks; Lite2 21 (1+3+3+4+4+5+1).
  assert len(block_plan(0)) == 16 and 3.3e6 < count_params(pretrained.backbone_model(net)) < 3.45e6
  assert len(block_plan(2)) == 21 and round_filters(40, 1.1) == 48
  with pytest.raises(ValueError, match="variant must be one of"):
    EfficientNetLitePose(7)
  with pytest.raises(ValueError, match="width applies to ResNet"):
    build_pose_model("efficientnet_lite0", (64, 64), 14, width=16)


def test_split_points_compose_and_config_and_keras_file_round_trip(tmp_path):
  net = EfficientNetLitePose(0, 5, (64, 64, 3), deconv_filters=(32, 32))
  x = np.random.default_rng(0).normal(size=(2, 64, 64, 3)).astype("float32")
  y = net(x, training=False).numpy()
  for point in net.split_points:
    head, tail = net.split(point)
    np.testing.assert_allclose(tail(head(x)).numpy(), y, atol=1e-5, err_msg=point)
  clone = EfficientNetLitePose.from_config(net.get_config())
  assert clone.get_config() == net.get_config() and count_params(clone) == count_params(net)
  net.save(str(tmp_path / "lite.keras"))
  loaded = keras.models.load_model(str(tmp_path / "lite.keras"))
  assert type(loaded) is EfficientNetLitePose and loaded.get_config() == net.get_config()
  np.testing.assert_allclose(loaded(x, training=False).numpy(), y, atol=1e-6)


@pytest.mark.slow
def test_mixed_precision_and_saved_model_export(tmp_path):
  net = build_pose_model("efficientnet_lite0", (64, 64), 17, dtype="mixed_bfloat16", deconv_filters=(16,))
  assert net(np.zeros((1, 64, 64, 3), np.float32)).dtype == tf.float32
  assert net.get_layer("layer2").get_layer("block3_dwconv").compute_dtype == "bfloat16"
  assert all(v.dtype == tf.float32 for v in net.trainable_variables)
  fp32 = build_pose_model("efficientnet_lite0", (64, 64), 17, deconv_filters=(16,))
  path = export.export_saved_model(fp32, str(tmp_path / "sm" / "1"))
  jpeg = tf.io.encode_jpeg(np.random.default_rng(0).integers(0, 255, (80, 60, 3), dtype=np.uint8)).numpy()
  out = tf.saved_model.load(path).signatures["serving_default"](
    images=tf.constant([jpeg]), boxes=tf.constant([[5.0, 5.0, 40.0, 60.0]])
  )
  assert out["keypoints"].shape == (1, 17, 2) and np.isfinite(out["keypoints"].numpy()).all()


def test_the_input_adapter_gives_the_checkpoint_its_own_normalization():
  """ImageNet-normalized pixels in, (pixel - 127) / 128 out of the stem's first layer."""
  net = build_pose_model("efficientnet_lite0", (32, 32), 5)
  pixels = np.random.default_rng(0).integers(0, 256, (1, 32, 32, 3)).astype(np.float32)
  adapter = net.get_layer("stem").get_layer("stem_input_adapter")
  got = adapter(codec.normalize_image(pixels)).numpy()
  np.testing.assert_allclose(got, (pixels - 127.0) / 128.0, atol=1e-5)
  assert not adapter.weights  # Fixed: nothing to train or to load.


def _state_dict():
  torch = pytest.importorskip("torch", reason="the PyTorch reference forward needs torch (requirements-test.txt)")
  try:
    _, path = lite_weights.named_checkpoint("efficientnet_lite0_imagenet")
  except lite_weights.LiteWeightsError as e:
    pytest.skip(f"the ImageNet checkpoint is not installed: {e}")
  return torch, {k: v for k, v in torch.load(path, map_location="cpu", weights_only=True).items()}


@pytest.fixture(scope="session")
def imagenet_net():
  torch, sd = _state_dict()
  net = build_pose_model("efficientnet_lite0", (224, 224), 14)
  classifier = pretrained._load_named_lite(net, "efficientnet_lite0_imagenet")
  return torch, sd, net, classifier


def _real_images(n=4, size=224):
  files = sorted(glob.glob(os.path.join(COCO_VAL, "*.jpg")))[:n]
  if len(files) < n:
    pytest.skip(f"the real COCO images are absent ({COCO_VAL})")
  return files, np.stack(
    [tf.image.resize(tf.io.decode_jpeg(tf.io.read_file(f), 3), (size, size)).numpy() for f in files]
  ).astype(np.float32)


def test_imagenet_logits_equal_an_independent_pytorch_forward_on_real_photos(imagenet_net):
  import torch_lite

  torch, sd, net, (kernel, bias) = imagenet_net
  files, pixels = _real_images()
  # Ours: the pipeline's normalization, the pose network's backbone stages, then the package's classifier.
  features = pretrained.backbone_model(net)(codec.normalize_image(pixels), training=False).numpy()
  ours = features.mean(axis=(1, 2)) @ kernel + bias
  with torch.no_grad():
    theirs = torch_lite.forward(
      {k: v.float() for k, v in sd.items() if v.is_floating_point()},
      torch.from_numpy(((pixels - 127.0) / 128.0).transpose(0, 3, 1, 2).copy()),
    ).numpy()
  print("max |logit difference|", np.abs(ours - theirs).max(), "of logits up to", np.abs(theirs).max())
  np.testing.assert_allclose(ours, theirs, atol=1e-4, rtol=1e-4)
  assert (ours.argmax(1) == theirs.argmax(1)).all()
  # And they are ImageNet predictions: coco_mini val 000000000139 is a living room (548 = entertainment center).
  assert os.path.basename(files[0]) == "000000000139.jpg" and ours[0].argmax() == 548


def test_converted_weights_file_loads_without_pytorch_and_gives_the_same_network(imagenet_net, tmp_path):
  _, _, net, _ = imagenet_net
  path = str(tmp_path / "lite0.weights.h5")
  pretrained.save_backbone_weights(net, path)
  again = build_pose_model("efficientnet_lite0", (224, 224), 14, pretrained=path)
  x = codec.normalize_image(_real_images(2)[1])
  np.testing.assert_array_equal(
    pretrained.backbone_model(again)(x, training=False).numpy(),
    pretrained.backbone_model(net)(x, training=False).numpy(),
  )


def test_a_state_dict_that_does_not_fit_names_the_file_and_the_layer(tmp_path):
  torch, sd = _state_dict()
  bad = dict(sd)
  bad["_blocks.3._depthwise_conv.weight"] = torch.zeros(144, 1, 3, 3)  # Lite0 block 3 is 5x5.
  path = str(tmp_path / "bad.pth")
  torch.save(bad, path)
  with pytest.raises(pretrained.PretrainedWeightsError, match=r"bad\.pth does not match .*block3_dwconv"):
    build_pose_model("efficientnet_lite0", (64, 64), 14, pretrained=path)
  se = dict(sd)
  se["_blocks.0._se_reduce.weight"] = torch.zeros(8, 32, 1, 1)
  torch.save(se, path)
  with pytest.raises(
    pretrained.PretrainedWeightsError,
    match=r"bad\.pth: unexpected key '_blocks\.0\._se_reduce"
    r"\.weight'.*squeeze-excite",
  ):
    build_pose_model("efficientnet_lite0", (64, 64), 14, pretrained=path)
  with pytest.raises(pretrained.PretrainedWeightsError, match="efficientnet_lite0_imagenet is EfficientNet-Lite0's"):
    build_pose_model("efficientnet_lite2", (64, 64), 14, pretrained="efficientnet_lite0_imagenet")
  with pytest.raises(pretrained.PretrainedWeightsError, match="ResNet and EfficientNet-Lite networks"):
    build_pose_model("hrnet_w32", (64, 64), 14, pretrained=path)
