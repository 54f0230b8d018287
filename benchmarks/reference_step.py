#!/usr/bin/env python
"""PyTorch's train step for the networks and methods of ``benchmarks/train_step.py``, side by side on one machine.

What Xie et al.'s code (and the paper's rows) run per step, rebuilt in plain PyTorch so that it needs nothing but
``torch`` (no timm: the networks are written out here, with the layer sizes of ours; ``--check`` compares the
parameter counts with our Keras networks):

* ``r18``: SimpleBaseline-R18 (torchvision's ResNet-18 layout, three 256-filter 4x4 transposed convolutions, a 1x1
  head), 17 heatmaps at 256x192 by default;
* ``lite0``: EfficientNet-Lite0 (no squeeze-excitation, ReLU6, stem 32, head 1280) + three 128-filter 4x4
  transposed convolutions + a 1x1 head, 14 heatmaps at 192x192 by default (the LSPET regimes' network).

Methods, per optimizer step:

* supervised: forward + JointsMSE on the labeled batch, backward, Adam;
* single: the same, plus the teacher pass on the weak views (no gradient, batch norm in training mode), a cutout
  of 5 joints at the teacher's argmax, a random rotation / scale of the masked views and of the teacher heatmaps
  (``affine_grid`` + ``grid_sample``), the student pass and its MSE;
* plus: single, plus the mixup pass: the weak views mixed with a permutation of themselves (Beta(1, 1) weight) at
  the image or before layer3 (drawn per step), trained against the equally mixed teacher heatmaps.

Each runs in float32 or under ``torch.autocast("cpu", torch.bfloat16)``, with NCHW tensors or ``channels_last``
(PyTorch's best CPU layout for convolutions). Run it where PyTorch is installed (requirements-test.txt has the CPU
build), right before or after ``benchmarks/train_step.py`` on the same idle machine, or let
``benchmarks/cpu_step_table.py`` interleave the two::

  python benchmarks/reference_step.py --networks lite0 --methods supervised,plus --dtypes float32,bfloat16 \
      --formats channels_first,channels_last

Prints images/s (labeled + unlabeled per optimizer step) and s/step per row.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import time

import torch
from torch import nn
from torch.nn import functional as F


class BasicBlock(nn.Module):
  def __init__(self, cin: int, cout: int, stride: int):
    super().__init__()
    self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(cout)
    self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
    self.bn2 = nn.BatchNorm2d(cout)
    self.down = None
    if stride != 1 or cin != cout:
      self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

  def forward(self, x):
    y = F.relu(self.bn1(self.conv1(x)))
    y = self.bn2(self.conv2(y))
    return F.relu(y + (x if self.down is None else self.down(x)))


class Staged(nn.Module):
  """A network run stage by stage (``self.stages``), the batch optionally mixed before stage ``mix_at``."""

  def forward(self, x, mix_at: int = -1, mix=None):
    for i, stage in enumerate(self.stages):
      if i == mix_at:
        x = mix(x)
      x = stage(x)
    return x


class SimpleBaselineR18(Staged):
  """SimpleBaseline-R18 in the stages of ours (stem, layer1..layer4, deconv, final)."""

  def __init__(self, k: int = 17):
    super().__init__()
    stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1))
    stages, cin = [stem], 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
      stages.append(nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)))
      cin = cout
    self.stages = nn.ModuleList(stages + [deconv_head(cin, 256), nn.Conv2d(256, k, 1)])


# EfficientNet-B0's block groups: (repeats, kernel, stride, expand ratio, input filters, output filters).
LITE0_GROUPS = (
  (1, 3, 1, 1, 32, 16),
  (2, 3, 2, 6, 16, 24),
  (2, 5, 2, 6, 24, 40),
  (3, 3, 2, 6, 40, 80),
  (3, 5, 1, 6, 80, 112),
  (4, 5, 2, 6, 112, 192),
  (1, 3, 1, 6, 192, 320),
)


class MBConv(nn.Module):
  """Lite's inverted residual: 1x1 expand, depthwise k x k, 1x1 project, each with batch norm (eps 1e-3)."""

  def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int):
    super().__init__()
    mid = cin * expand
    layers = []
    if expand != 1:
      layers += [nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid, eps=1e-3), nn.ReLU6()]
    layers += [
      nn.Conv2d(mid, mid, kernel, stride, kernel // 2, groups=mid, bias=False),
      nn.BatchNorm2d(mid, eps=1e-3),
      nn.ReLU6(),
      nn.Conv2d(mid, cout, 1, bias=False),
      nn.BatchNorm2d(cout, eps=1e-3),
    ]
    self.block = nn.Sequential(*layers)
    self.residual = stride == 1 and cin == cout

  def forward(self, x):
    y = self.block(x)
    return x + y if self.residual else y


def _group(index: int) -> list[nn.Module]:
  repeats, kernel, stride, expand, cin, cout = LITE0_GROUPS[index]
  return [MBConv(cin if r == 0 else cout, cout, kernel, stride if r == 0 else 1, expand) for r in range(repeats)]


def deconv_head(cin: int, filters: int) -> nn.Sequential:
  layers = []
  for _ in range(3):
    layers += [nn.ConvTranspose2d(cin, filters, 4, 2, 1, bias=False), nn.BatchNorm2d(filters), nn.ReLU()]
    cin = filters
  return nn.Sequential(*layers)


class Lite0Pose(Staged):
  """EfficientNet-Lite0 + deconv 128 x 3 + 1x1 head, in the stages of ours (stem, layer1..layer4, deconv, final)."""

  def __init__(self, k: int = 14):
    super().__init__()
    stem = [nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32, eps=1e-3), nn.ReLU6()]
    head = [nn.Conv2d(320, 1280, 1, bias=False), nn.BatchNorm2d(1280, eps=1e-3), nn.ReLU6()]
    self.stages = nn.ModuleList(
      [
        nn.Sequential(*stem, *_group(0)),
        nn.Sequential(*_group(1)),
        nn.Sequential(*_group(2)),
        nn.Sequential(*_group(3), *_group(4)),
        nn.Sequential(*_group(5), *_group(6), *head),
        deconv_head(1280, 128),
        nn.Conv2d(128, k, 1),
      ]
    )


def joints_mse(pred, target):
  return 0.5 * ((pred - target) ** 2).mean()


def cutout(images, heatmaps, num: int = 5, half: int = 15):
  """Masks ``num`` joints per sample (drawn without care for empty channels, as the reference) at the argmax."""
  b, k, h, w = heatmaps.shape
  stride = images.shape[-1] / w
  flat = heatmaps.flatten(2).argmax(-1)
  ys, xs = (flat // w).float() * stride, (flat % w).float() * stride
  out = images.clone()
  for i in range(b):
    for j in torch.randint(0, k, (num,)).tolist():
      x, y = int(xs[i, j]), int(ys[i, j])
      out[i, :, max(0, y - half) : y + half, max(0, x - half) : x + half] = 0
  return out


def strong_affine(images, heatmaps):
  b = images.shape[0]
  rot = torch.randn(b).clamp(-2, 2) * 30 * math.pi / 180 * (torch.rand(b) < 0.8)
  scale = (torch.randn(b) * 0.25 + 1).clamp(0.75, 1.25)
  cos, sin = torch.cos(rot) * scale, torch.sin(rot) * scale
  theta = torch.stack([torch.stack([cos, -sin, torch.zeros(b)], -1), torch.stack([sin, cos, torch.zeros(b)], -1)], 1)
  warp = lambda x: F.grid_sample(x, F.affine_grid(theta, x.shape, align_corners=False), align_corners=False)  # noqa: E731
  return warp(images), warp(heatmaps)


LAYER3 = 3  # Stage index of layer3: the paper's feature mixup mixes its input.
NETWORKS = {"r18": (SimpleBaselineR18, (256, 192), 17), "lite0": (Lite0Pose, (192, 192), 14)}


def step_fn(net, opt, data, method: str, autocast):
  """One optimizer step of ``method``; ``autocast`` is a context manager factory (bfloat16 or nothing)."""
  x_l, h_l, x_u = data
  with autocast():
    loss = joints_mse(net(x_l).float(), h_l)
    if method in ("single", "plus"):
      with torch.no_grad():
        h_t = net(x_u).float()  # Training-mode batch norm, as the reference's teacher.
      x_s, h_s = strong_affine(cutout(x_u, h_t), h_t)
      loss = loss + joints_mse(net(x_s).float(), h_s)
    if method == "plus":
      lam = float(torch.distributions.Beta(1.0, 1.0).sample())
      perm = torch.randperm(x_u.shape[0])
      where = 0 if torch.rand(()) < 0.5 else LAYER3  # The image, or before layer3.
      pred = net(x_u, mix_at=where, mix=lambda t: lam * t + (1 - lam) * t[perm]).float()
      loss = loss + lam * joints_mse(pred, h_t) + (1 - lam) * joints_mse(pred, h_t[perm])
  opt.zero_grad(set_to_none=True)
  loss.backward()
  opt.step()
  return float(loss.detach())


def measure(network: str, method: str, batch: int, steps: int, dtype: str, memory_format: str) -> float:
  """Images per second (labeled + unlabeled) over ``steps`` steps after two warm-up steps."""
  torch.manual_seed(0)
  make, (h, w), k = NETWORKS[network]
  fmt = torch.channels_last if memory_format == "channels_last" else torch.contiguous_format
  net = make(k).train().to(memory_format=fmt)
  opt = torch.optim.Adam(net.parameters(), 1e-3)
  data = (
    torch.randn(batch, 3, h, w).contiguous(memory_format=fmt),
    torch.rand(batch, k, h // 4, w // 4).contiguous(memory_format=fmt),
    torch.randn(batch, 3, h, w).contiguous(memory_format=fmt),
  )
  if dtype == "bfloat16":
    autocast = lambda: torch.autocast("cpu", dtype=torch.bfloat16)  # noqa: E731
  else:
    autocast = contextlib.nullcontext
  for _ in range(2):
    step_fn(net, opt, data, method, autocast)
  start = time.perf_counter()
  for _ in range(steps):
    step_fn(net, opt, data, method, autocast)
  images = batch * (1 if method == "supervised" else 2)
  return images * steps / (time.perf_counter() - start)


def count_params(network: str) -> int:
  make, _, k = NETWORKS[network]
  return sum(p.numel() for p in make(k).parameters())


def main() -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--networks", default="r18", help=f"comma-separated, from {sorted(NETWORKS)}")
  p.add_argument("--batch", type=int, default=8, help="labeled and unlabeled batch size each")
  p.add_argument("--steps", type=int, default=3)
  p.add_argument("--methods", default="supervised,single", help="supervised, single, plus")
  p.add_argument("--dtypes", default="float32", help="float32, bfloat16 (autocast)")
  p.add_argument("--formats", default="channels_first", help="channels_first (NCHW), channels_last")
  p.add_argument("--check", action="store_true", help="print each network's parameter count and exit")
  args = p.parse_args()
  networks = args.networks.split(",")
  for name in networks:
    if name not in NETWORKS:
      p.error(f"--networks: unknown network {name!r}; choose from {sorted(NETWORKS)}")
  if args.check:
    for name in networks:
      print(f"{name} {count_params(name)} parameters")
    return 0
  torch.set_num_threads(os.cpu_count() or 1)
  print(
    f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads; batch {args.batch} labeled + {args.batch} "
    "unlabeled (supervised: labeled only)"
  )
  print(f"{'network':18s} {'method':11s} {'dtype':9s} {'format':15s} {'images/s':>9s} {'s/step':>7s}")
  for name in networks:
    _, (h, w), _ = NETWORKS[name]
    for method in args.methods.split(","):
      for dtype in args.dtypes.split(","):
        for memory_format in args.formats.split(","):
          ips = measure(name, method, args.batch, args.steps, dtype, memory_format)
          images = args.batch * (1 if method == "supervised" else 2)
          label = f"{name} {h}x{w}"
          print(f"{label:18s} {method:11s} {dtype:9s} {memory_format:15s} {ips:9.2f} {images / ips:7.2f}", flush=True)
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
