#!/usr/bin/env python
"""The PyTorch reference's train step, for side-by-side speed with ``benchmarks/train_step.py`` on one machine.

What Xie et al.'s code (and the paper's "single" row) runs per step, rebuilt in plain PyTorch so that it needs
nothing but ``torch``: SimpleBaseline-R18 (torchvision's ResNet-18 layout, three 256-filter 4x4 transposed
convolutions, a 1x1 head), at 256x192, 8 labeled + 8 unlabeled:

* supervised: forward + JointsMSE on the labeled batch, backward, Adam;
* single: the same, plus the teacher pass on the weak views (no gradient, batch norm in training mode), a cutout
  of 5 joints at the teacher's argmax, a random rotation / scale of the masked views and of the teacher heatmaps
  (``affine_grid`` + ``grid_sample``), the student pass and its MSE.

Run it in an environment with PyTorch (not a dependency of this project), e.g.::

  python -m venv /tmp/torch && /tmp/torch/bin/pip install torch numpy
  /tmp/torch/bin/python benchmarks/reference_step.py --steps 4

and ``python benchmarks/train_step.py --methods supervised,single --policies float32 --steps 4`` right after
it, on the same idle machine. Prints images/s (labeled + unlabeled per optimizer step).
"""

from __future__ import annotations

import argparse
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


class SimpleBaselineR18(nn.Module):
  def __init__(self, k: int = 17):
    super().__init__()
    self.stem = nn.Sequential(
      nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1)
    )
    layers, cin = [], 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
      layers += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
      cin = cout
    self.layers = nn.Sequential(*layers)
    deconv = []
    for _ in range(3):
      deconv += [nn.ConvTranspose2d(cin, 256, 4, 2, 1, bias=False), nn.BatchNorm2d(256), nn.ReLU()]
      cin = 256
    self.deconv = nn.Sequential(*deconv)
    self.final = nn.Conv2d(256, k, 1)

  def forward(self, x):
    return self.final(self.deconv(self.layers(self.stem(x))))


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


def step_fn(net, opt, data, method: str):
  x_l, h_l, x_u = data
  loss = joints_mse(net(x_l), h_l)
  if method == "single":
    with torch.no_grad():
      h_t = net(x_u)  # Training-mode batch norm, as the reference's teacher.
    x_s, h_s = strong_affine(cutout(x_u, h_t), h_t)
    loss = loss + joints_mse(net(x_s), h_s)
  opt.zero_grad(set_to_none=True)
  loss.backward()
  opt.step()
  return float(loss.detach())


def measure(method: str, batch: int, steps: int) -> float:
  torch.manual_seed(0)
  net = SimpleBaselineR18().train()
  opt = torch.optim.Adam(net.parameters(), 1e-3)
  data = (torch.randn(batch, 3, 256, 192), torch.rand(batch, 17, 64, 48), torch.randn(batch, 3, 256, 192))
  for _ in range(2):
    step_fn(net, opt, data, method)
  start = time.perf_counter()
  for _ in range(steps):
    step_fn(net, opt, data, method)
  images = batch * (2 if method == "single" else 1)
  return images * steps / (time.perf_counter() - start)


def main() -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--batch", type=int, default=8, help="labeled and unlabeled batch size each")
  p.add_argument("--steps", type=int, default=3)
  p.add_argument("--methods", default="supervised,single")
  args = p.parse_args()
  torch.set_num_threads(os.cpu_count() or 1)
  print(
    f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads; SimpleBaseline-R18 256x192, batch "
    f"{args.batch} labeled + {args.batch} unlabeled (supervised: labeled only), float32"
  )
  for method in args.methods.split(","):
    print(f"reference {method:10s} {measure(method, args.batch, args.steps):9.2f} images/s", flush=True)
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
