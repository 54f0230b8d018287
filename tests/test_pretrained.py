"""Pretrained backbones: keras-hub presets from a local directory, .weights.h5 files, torchvision checkpoints."""

import os

import numpy as np
import pytest

from semipose_tf.models import build_pose_model
from semipose_tf.models.pretrained import (
  PretrainedWeightsError,
  backbone_model,
  convert_torchvision_resnet,
  save_backbone_weights,
)


def _randomize_bn_stats(model, seed=0):
  """Random BN moving statistics so that inference really depends on them."""
  rng = np.random.default_rng(seed)
  for layer in model._flatten_layers(include_self=False, recursive=True):
    if layer.__class__.__name__ == "BatchNormalization":
      c = layer.gamma.shape[0]
      layer.set_weights(
        [rng.uniform(0.5, 1.5, c), rng.normal(0, 0.1, c), rng.normal(0, 0.1, c), rng.uniform(0.5, 1.5, c)]
      )


@pytest.fixture(scope="session")
def hub_preset(tmp_path_factory):
  """A keras-hub ResNet-18 (random weights: no download) saved as a local preset directory."""
  keras_hub = pytest.importorskip("keras_hub")
  hub = keras_hub.models.ResNetBackbone(
    input_conv_filters=[64],
    input_conv_kernel_sizes=[7],
    stackwise_num_filters=[64, 128, 256, 512],
    stackwise_num_blocks=[2, 2, 2, 2],
    stackwise_num_strides=[1, 2, 2, 2],
    block_type="basic_block",
    use_pre_activation=False,
    image_shape=(None, None, 3),
  )
  _randomize_bn_stats(hub)
  path = str(tmp_path_factory.mktemp("preset") / "resnet18_local")
  hub.save_to_preset(path)
  return hub, path


def test_keras_hub_preset_directory_reproduces_its_weights(hub_preset):
  hub, path = hub_preset
  model = build_pose_model("resnet18", (64, 64), 5, pretrained=path)
  ours = {layer.name: layer for s in model.backbone_stages for layer in model.get_layer(s).layers if layer.weights}
  assert len(ours) == sum(1 for layer in hub.layers if layer.weights)
  for layer in hub.layers:
    for a, b in zip(layer.weights, ours.get(layer.name, layer).weights):
      np.testing.assert_array_equal(a.numpy(), b.numpy())
  x = np.random.default_rng(0).normal(size=(2, 64, 64, 3)).astype("float32")
  np.testing.assert_allclose(
    backbone_model(model)(x, training=False).numpy(), hub(x, training=False).numpy(), atol=1e-4, rtol=1e-4
  )  # Same architecture, same features.


@pytest.mark.slow
def test_mismatched_preset_says_which_layers(hub_preset):
  _, path = hub_preset
  with pytest.raises(
    PretrainedWeightsError,
    match=r"does not match the backbone of simple_baseline_r50.*shape "
    r"mismatch",
  ):
    build_pose_model("resnet50", (64, 64), 5, pretrained=path)
  with pytest.raises(PretrainedWeightsError, match="keras-hub has no preset"):
    build_pose_model("hrnet_w32", (64, 64), 5, pretrained=path)


def test_wrong_paths():
  with pytest.raises(FileNotFoundError, match="pretrained weights not found: /no/such/file.weights.h5"):
    build_pose_model("resnet18", (64, 64), 5, pretrained="/no/such/file.weights.h5")


def test_not_a_preset_directory(tmp_path):
  with pytest.raises(PretrainedWeightsError, match="not a keras-hub preset directory"):
    build_pose_model("resnet18", (64, 64), 5, pretrained=str(tmp_path))


# HRNet at width 8 and 16: the family's code path (the same layers as W32 / W48) at a fraction of the weights.
@pytest.mark.parametrize(
  "backbone,other,size", [("resnet18", "resnet34", (64, 64)), ("hrnet_w8", "hrnet_w16", (64, 64))]
)
@pytest.mark.slow
def test_weights_h5_round_trip_and_mismatch(tmp_path, backbone, other, size):
  a = build_pose_model(backbone, size, 5)
  _randomize_bn_stats(a, 1)
  path = str(tmp_path / "backbone.weights.h5")
  save_backbone_weights(a, path)
  b = build_pose_model(backbone, size, 9, pretrained=path)  # A different K: only the backbone is loaded.
  x = np.random.default_rng(2).normal(size=(1,) + size + (3,)).astype("float32")
  np.testing.assert_array_equal(
    backbone_model(a)(x, training=False).numpy(), backbone_model(b)(x, training=False).numpy()
  )
  with pytest.raises(
    PretrainedWeightsError,
    match=r"backbone.weights.h5 does not match the backbone of .*(shape mismatch|in the model but not in the file)",
  ):
    build_pose_model(other, size, 5, pretrained=path)


def _torch_resnet(depth):
  """torchvision's ResNet architecture in a few lines of plain torch (torchvision is not needed)."""
  torch = pytest.importorskip("torch")
  nn = torch.nn

  class Basic(nn.Module):
    expansion = 1

    def __init__(self, cin, planes, stride, down):
      super().__init__()
      self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
      self.bn1 = nn.BatchNorm2d(planes)
      self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
      self.bn2 = nn.BatchNorm2d(planes)
      self.downsample = down

    def forward(self, x):
      y = torch.relu(self.bn1(self.conv1(x)))
      y = self.bn2(self.conv2(y))
      return torch.relu(y + (self.downsample(x) if self.downsample is not None else x))

  class Bottle(nn.Module):
    expansion = 4

    def __init__(self, cin, planes, stride, down):
      super().__init__()
      self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
      self.bn1 = nn.BatchNorm2d(planes)
      self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
      self.bn2 = nn.BatchNorm2d(planes)
      self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
      self.bn3 = nn.BatchNorm2d(planes * 4)
      self.downsample = down

    def forward(self, x):
      y = torch.relu(self.bn1(self.conv1(x)))
      y = torch.relu(self.bn2(self.conv2(y)))
      y = self.bn3(self.conv3(y))
      return torch.relu(y + (self.downsample(x) if self.downsample is not None else x))

  block, counts = {18: (Basic, [2, 2, 2, 2]), 50: (Bottle, [3, 4, 6, 3])}[depth]

  class ResNet(nn.Module):
    def __init__(self):
      super().__init__()
      self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
      self.bn1 = nn.BatchNorm2d(64)
      self.maxpool = nn.MaxPool2d(3, 2, 1)
      cin = 64
      for i, (planes, n) in enumerate(zip([64, 128, 256, 512], counts)):
        blocks = []
        for b in range(n):
          stride = 2 if (b == 0 and i > 0) else 1
          down = None
          if b == 0 and (stride != 1 or cin != planes * block.expansion):
            down = nn.Sequential(
              nn.Conv2d(cin, planes * block.expansion, 1, stride, bias=False), nn.BatchNorm2d(planes * block.expansion)
            )
          blocks.append(block(cin, planes, stride, down))
          cin = planes * block.expansion
        setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
      self.fc = nn.Linear(cin, 1000)

    def forward(self, x):
      x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
      return self.layer4(self.layer3(self.layer2(self.layer1(x))))

  torch.manual_seed(0)
  net = ResNet()
  for m in net.modules():
    if isinstance(m, nn.BatchNorm2d):
      m.running_mean.uniform_(-0.1, 0.1)
      m.running_var.uniform_(0.5, 1.5)
      m.weight.data.uniform_(0.5, 1.5)
      m.bias.data.uniform_(-0.1, 0.1)
  return torch, net.eval()


@pytest.mark.parametrize("depth", [18, 50])
def test_torchvision_checkpoint_gives_the_same_features(tmp_path, depth):
  torch, net = _torch_resnet(depth)
  path = str(tmp_path / f"resnet{depth}.pth")
  torch.save(net.state_dict(), path)
  model = build_pose_model(f"resnet{depth}", (64, 64), 5, pretrained=path)
  x = np.random.default_rng(3).normal(size=(2, 64, 64, 3)).astype("float32")
  with torch.no_grad():
    ref = net(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy().transpose(0, 2, 3, 1)
  ours = backbone_model(model)(x, training=False).numpy()
  np.testing.assert_allclose(ours, ref, atol=2e-4, rtol=1e-3)


@pytest.mark.slow
def test_convert_script_and_bad_state_dict(tmp_path):
  torch, net = _torch_resnet(18)
  pth = str(tmp_path / "r18.pth")
  torch.save(net.state_dict(), pth)
  out = str(tmp_path / "r18.weights.h5")
  import subprocess
  import sys

  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  r = subprocess.run(
    [sys.executable, os.path.join(root, "scripts", "convert_torchvision.py"), "--depth", "18", pth, out],
    capture_output=True,
    text=True,
  )
  assert r.returncode == 0, r.stderr
  a = build_pose_model("resnet18", (64, 64), 5, pretrained=pth)
  b = build_pose_model("resnet18", (64, 64), 5, pretrained=out)
  x = np.ones((1, 64, 64, 3), np.float32)
  np.testing.assert_array_equal(backbone_model(a)(x).numpy(), backbone_model(b)(x).numpy())
  with pytest.raises(PretrainedWeightsError, match="unexpected key 'features.0.weight'"):
    convert_torchvision_resnet({"features.0.weight": np.zeros((64, 3, 3, 3))})
