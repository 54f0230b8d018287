"""An independent PyTorch forward of an EfficientNet-Lite state dict (for the logit test)."""

import math

import torch.nn.functional as F


def _same_pad(x, k, s):
  h, w = x.shape[-2:]
  ph = max((math.ceil(h / s) - 1) * s + k - h, 0)
  pw = max((math.ceil(w / s) - 1) * s + k - w, 0)
  return F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])


def _bn(x, sd, p):
  return F.batch_norm(
    x, sd[p + ".running_mean"], sd[p + ".running_var"], sd[p + ".weight"], sd[p + ".bias"], False, 0.0, 1e-3
  )


def _conv(x, w, s=1, groups=1):
  return F.conv2d(_same_pad(x, w.shape[-1], s), w, stride=s, groups=groups)


STRIDES = {1: 2, 3: 2, 5: 2, 11: 2}


def forward(sd, x):
  """x: [N, 3, H, W] float tensor, already (pixel - 127) / 128. Returns logits [N, 1000]."""
  x = F.relu6(_bn(_conv(x, sd["_conv_stem.weight"], 2), sd, "_bn0"))
  i = 0
  while f"_blocks.{i}._depthwise_conv.weight" in sd:
    p = f"_blocks.{i}."
    inp = x
    if p + "_expand_conv.weight" in sd:
      x = F.relu6(_bn(_conv(x, sd[p + "_expand_conv.weight"]), sd, p + "_bn0"))
    dw = sd[p + "_depthwise_conv.weight"]
    stride = STRIDES.get(i, 1)
    x = F.relu6(_bn(_conv(x, dw, stride, groups=dw.shape[0]), sd, p + "_bn1"))
    x = _bn(_conv(x, sd[p + "_project_conv.weight"]), sd, p + "_bn2")
    if stride == 1 and x.shape == inp.shape:
      x = x + inp
    i += 1
  x = F.relu6(_bn(_conv(x, sd["_conv_head.weight"]), sd, "_bn1"))
  return F.linear(x.mean((2, 3)), sd["_fc.weight"], sd["_fc.bias"])
