"""Deployment beyond TF Serving: the network as ONNX (onnxruntime, TensorRT), LiteRT (phones) or OpenVINO (Intel
CPUs), and each artifact loaded back in its own runtime.

Every format holds one graph, from normalized crops to heatmaps and decoded keypoints:

* input ``crops`` [N, H, W, 3] float32: person crops made as the evaluation makes them (``HeatmapCodec.eval_crop``:
  box -> centre / scale with ``codec.PADDING``, the crop affine, ImageNet mean / std normalization);
* outputs ``heatmaps`` [N, H/4, W/4, K] float32, ``keypoints`` [N, K, 2] float32 (x, y in crop pixels: the
  reference's argmax with the quarter-pixel shift, times the stride) and ``scores`` [N, K] (the heatmap maxima).

Decoding runs in the graph in every format. Mapping crop pixels back to the image is the inverse of the crop
affine (``codec.heatmap_to_image`` does it from the heatmaps; a client without TensorFlow applies the 2x3 affine it
cropped with, inverted; :class:`semipose_tf.predictor.Predictor` does all of it for every format). The SavedModel
(``export.py``) keeps its JPEG + box signature; these formats take crops because none of their runtimes decodes JPEG.

An artifact is a folder: ``model.onnx``, ``model.tflite`` or ``model.xml`` + ``model.bin``,
``keypoint_spec.json`` (when the network carries one) and ``deploy.json`` (format, variant, input size, stride,
normalization, output names), built aside and swapped in whole. Every format goes through Keras's own export: ONNX
(``model.export(format="onnx")``, tf2onnx underneath), OpenVINO IR (``format="openvino"``, OpenVINO's converter of
the same concrete function, float32) and LiteRT (``format="litert"``, ``tf.lite.TFLiteConverter``) in float32,
float16 (weights) or int8 (post-training quantization of weights and activations, calibrated on crops of an
evaluation set the user names; inputs and outputs stay float32). The converters and runtimes come with the
``deploy`` extra: ``pip install -e '.[deploy]'`` (onnx, tf2onnx, onnxruntime, ai-edge-litert, openvino). LiteRT's
converter is TensorFlow's own, so a LiteRT export needs no extra; running it does (ai-edge-litert).
"""

from __future__ import annotations

import json
import os
from typing import Callable, Iterable

import keras
import numpy as np
import tensorflow as tf

from semipose_tf import atomic, codec
from semipose_tf.console import quiet_native
from semipose_tf.keypoints import KeypointSpec, get_spec

FORMATS = ("saved_model", "onnx", "litert", "openvino")
LITERT_VARIANTS = ("float32", "float16", "int8")
DEPLOY_FILE = "deploy.json"
SPEC_FILE = "keypoint_spec.json"
MODEL_FILES = {"onnx": "model.onnx", "litert": "model.tflite", "openvino": "model.xml"}  # OpenVINO: + model.bin
OUTPUTS = ("heatmaps", "keypoints", "scores")
EXTRA = "pip install -e '.[deploy]'"


class MissingExtra(ImportError):
  """A format's packages are not installed; the message names the extra."""


def require(module: str, what: str):
  """Imports ``module`` or raises :class:`MissingExtra` naming the ``deploy`` extra."""
  import importlib

  try:
    return importlib.import_module(module)
  except ImportError:
    raise MissingExtra(
      f"{what} needs the package {module.split('.')[0]!r}: install the deploy extra ({EXTRA})"
    ) from None


@keras.saving.register_keras_serializable(package="semipose_tf")
class CropKeypoints(keras.Model):
  """A pose network with its decoding: normalized crops [N, H, W, 3] -> {heatmaps, keypoints (crop px), scores}."""

  def __init__(self, net: keras.Model, **kwargs):
    super().__init__(name="crop_keypoints", **kwargs)
    self.net = net
    self.geometry = codec.HeatmapCodec.of_network(net)

  def call(self, crops):
    heatmaps = tf.cast(self.net(crops, training=False), tf.float32)
    coords, scores = codec.decode_heatmaps(heatmaps)
    return {"heatmaps": heatmaps, "keypoints": self.geometry.to_input(coords), "scores": scores}


def _signature(net: keras.Model) -> tf.TensorSpec:
  h, w = codec.HeatmapCodec.of_network(net).input_size
  return tf.TensorSpec([None, h, w, 3], tf.float32, name="crops")


def _describe(net: keras.Model, fmt: str, variant: str) -> dict:
  geometry = codec.HeatmapCodec.of_network(net)
  return {
    "format": fmt,
    "variant": variant,
    "input": "crops",
    "input_size": list(geometry.input_size),
    "stride": geometry.stride,
    "padding": geometry.padding,
    "mean_rgb": list(codec.MEAN_RGB),
    "std_rgb": list(codec.STD_RGB),
    "outputs": list(OUTPUTS),
    "num_keypoints": int(net.output_shape[-1]),
    "network": net.name,
  }


def _write_onnx(net: keras.Model, folder: str) -> None:
  require("tf2onnx", "ONNX export")
  require("onnx", "ONNX export")
  model = CropKeypoints(net)
  model(tf.zeros((1,) + tuple(_signature(net).shape[1:]), tf.float32))  # Built before export.
  model.export(
    os.path.join(folder, MODEL_FILES["onnx"]), format="onnx", verbose=False, input_signature=[_signature(net)]
  )


def _write_openvino(net: keras.Model, folder: str) -> None:
  require("openvino", "OpenVINO export")
  model = CropKeypoints(net)
  model(tf.zeros((1,) + tuple(_signature(net).shape[1:]), tf.float32))  # Built before export.
  with quiet_native():
    model.export(
      os.path.join(folder, MODEL_FILES["openvino"]), format="openvino", verbose=False, input_signature=[_signature(net)]
    )


def _write_litert(
  net: keras.Model, folder: str, variant: str, representative: Callable[[], Iterable[np.ndarray]] | None
) -> None:
  model = CropKeypoints(net)
  model(tf.zeros((1,) + tuple(_signature(net).shape[1:]), tf.float32))  # Built before export.
  options = {}  # TFLiteConverter attributes, which Keras's export sets on its converter.
  if variant == "float16":
    options = {"optimizations": [tf.lite.Optimize.DEFAULT], "target_spec": {"supported_types": [tf.float16]}}
  elif variant == "int8":
    options = {
      "optimizations": [tf.lite.Optimize.DEFAULT],
      "representative_dataset": lambda: ([np.asarray(c, np.float32)] for c in representative()),
    }
  with quiet_native():  # The int8 calibration prints its settings from C++.
    model.export(
      os.path.join(folder, MODEL_FILES["litert"]),
      format="litert",
      verbose=False,
      input_signature=[_signature(net)],
      **options,
    )


def check_request(
  path: str,
  fmt: str,
  variant: str = "float32",
  overwrite: bool = False,
  representative: object = None,
  cli: bool = False,
) -> None:
  """Checks an export request before any work is done: the one place its rules live.

  Both ``scripts/export.py`` (before it loads the network) and :func:`export_artifact` call it.

  Args:
    path: The output folder.
    fmt: One of ``FORMATS``.
    variant: "float32"; for LiteRT also "float16" or "int8".
    overwrite: Whether an existing output may be replaced.
    representative: What int8 calibrates on (a set's path or a function); only whether it is given is checked.
    cli: Name the command line's flags (``--format``) in the messages instead of the arguments (``format``).

  Raises:
    ValueError: An unknown format, a variant the format has not, int8 without calibration crops.
    FileExistsError: ``path`` exists and ``overwrite`` is off.
    MissingExtra: The format's converter is not installed.
  """
  dash = "--" if cli else ""
  if fmt not in FORMATS:
    raise ValueError(f"unknown {dash}format {fmt!r}; choose from {', '.join(FORMATS)}")
  allowed = LITERT_VARIANTS if fmt == "litert" else ("float32",)
  if variant not in allowed:
    raise ValueError(f"{dash}format {fmt} has no {dash}variant {variant!r}; choose from {', '.join(allowed)}")
  if variant == "int8" and not representative:
    raise ValueError(
      f"{dash}variant int8 needs {dash}representative "
      + ("<an evaluation TFRecord set> to calibrate on" if cli else "crops to calibrate on")
    )
  if os.path.exists(path) and not overwrite:
    raise FileExistsError(
      f"{path} exists: choose another output or pass {'--overwrite' if cli else 'overwrite=True'}"
      " (the old one stays until the new one is complete)"
    )
  if fmt == "onnx":  # A missing extra is said before any work.
    require("tf2onnx", "ONNX export")
    require("onnx", "ONNX export")
  if fmt == "openvino":
    require("openvino", "OpenVINO export")


def export_artifact(
  net: keras.Model,
  path: str,
  fmt: str,
  variant: str = "float32",
  representative: Callable[[], Iterable[np.ndarray]] | None = None,
  overwrite: bool = False,
) -> str:
  """Writes an ONNX, LiteRT or OpenVINO artifact folder (see the module docstring); returns ``path``.

  Args:
    net: A pose network with a fixed input size.
    path: The artifact folder. An existing one is refused unless ``overwrite``; either way it stays whole until the
      new one is complete.
    fmt: "onnx", "litert" or "openvino" ("saved_model" is :func:`semipose_tf.export.export_saved_model`).
    variant: "float32"; for LiteRT also "float16" or "int8".
    representative: For int8: a function returning an iterable of normalized crop batches [n, H, W, 3].
    overwrite: Replace an existing artifact.
  """
  if fmt == "saved_model":
    raise ValueError("format 'saved_model' is written by semipose_tf.export.export_saved_model")
  check_request(path, fmt, variant, overwrite, representative)
  codec.HeatmapCodec.of_network(net)  # A fixed input size, a whole stride.

  def write(folder: str) -> str:
    if fmt == "onnx":
      _write_onnx(net, folder)
    elif fmt == "openvino":
      _write_openvino(net, folder)
    else:
      _write_litert(net, folder, variant, representative)
    atomic.write_json(os.path.join(folder, DEPLOY_FILE), _describe(net, fmt, variant))
    spec = getattr(net, "keypoint_spec", None)
    if spec is not None:
      atomic.write_json(os.path.join(folder, SPEC_FILE), spec.to_json())
    return path

  return atomic.write_directory(path, write)


class Artifact:
  """An exported artifact in its own runtime: ``artifact(crops)`` -> {heatmaps, keypoints, scores} as numpy.

  ``predict(crops)`` gives the heatmaps alone, the predict function every evaluator takes, so that
  ``scripts/evaluate.py --artifact`` scores an artifact with the same crops and decoding as the Keras network.
  """

  def __init__(self, path: str):
    self.path = path
    self.info = read_info(path)
    self.format = self.info["format"]
    self.spec: KeypointSpec | None = None
    if os.path.exists(os.path.join(path, SPEC_FILE)):
      with open(os.path.join(path, SPEC_FILE)) as f:
        self.spec = get_spec(json.load(f))
    self.input_size = tuple(self.info["input_size"])
    model = os.path.join(path, MODEL_FILES[self.format])
    if self.format == "onnx":
      ort = require("onnxruntime", "running an ONNX artifact")
      self._session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
      self._input = self._session.get_inputs()[0].name
      self._names = [o.name for o in self._session.get_outputs()]
    elif self.format == "openvino":
      ov = require("openvino", "running an OpenVINO artifact")
      # float32 as exported: on a CPU with bfloat16 units (AMX, AVX-512 BF16) OpenVINO otherwise runs in bfloat16
      # by default, and argmax near-ties move joints by heatmap pixels.
      self._compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
      self._keys = [_openvino_key(o) for o in self._compiled.outputs]
    else:
      interpreter = require("ai_edge_litert.interpreter", "running a LiteRT artifact")
      with quiet_native():  # "Created TensorFlow Lite XNNPACK delegate for CPU."
        self._interpreter = interpreter.Interpreter(model_path=model, num_threads=os.cpu_count())
      self._batch = None

  def __call__(self, crops) -> dict[str, np.ndarray]:
    crops = np.ascontiguousarray(np.asarray(crops, np.float32))
    if self.format == "onnx":
      values = self._session.run(None, {self._input: crops})
      return {_output_key(n): v for n, v in zip(self._names, values)}
    if self.format == "openvino":
      values = self._compiled(crops)
      return {key: np.asarray(values[o]) for key, o in zip(self._keys, self._compiled.outputs)}
    it = self._interpreter
    if self._batch != len(crops):  # LiteRT resizes the batch dimension and re-plans its buffers.
      it.resize_tensor_input(it.get_input_details()[0]["index"], list(crops.shape))
      with quiet_native():
        it.allocate_tensors()
      self._batch = len(crops)
    it.set_tensor(it.get_input_details()[0]["index"], crops)
    it.invoke()
    return {_output_key(d["name"], d["shape"]): it.get_tensor(d["index"]) for d in it.get_output_details()}

  def predict(self, crops) -> np.ndarray:
    return self(np.asarray(crops))["heatmaps"]


def _output_key(name: str, shape=None) -> str:
  """Which of heatmaps / keypoints / scores a runtime's output is (converters rename them; a LiteRT signature
  keeps the dict keys in the tensor names, and the shapes tell the rest apart)."""
  for key in OUTPUTS:
    if key in name:
      return key
  if shape is not None:
    return {4: "heatmaps", 3: "keypoints", 2: "scores"}[len(shape)]
  raise ValueError(f"unknown output {name!r}")


def _openvino_key(output) -> str:
  """An OpenVINO output's key: it keeps every name its tensor had ("scores" beside "crop_keypoints_1/Max:0")."""
  exact = set(output.get_names()) & set(OUTPUTS)
  if len(exact) == 1:
    return exact.pop()
  return {4: "heatmaps", 3: "keypoints", 2: "scores"}[output.get_partial_shape().rank.get_length()]


def read_info(path: str) -> dict:
  """The ``deploy.json`` of an artifact folder (one-line errors for a folder that is not one)."""
  info_file = os.path.join(path, DEPLOY_FILE)
  if not os.path.isfile(info_file):
    raise FileNotFoundError(f"{path} is not an exported ONNX / LiteRT / OpenVINO artifact (no {DEPLOY_FILE})")
  with open(info_file) as f:
    info = json.load(f)
  if info.get("format") not in MODEL_FILES or not os.path.isfile(os.path.join(path, MODEL_FILES[info["format"]])):
    raise ValueError(f"{path}: {DEPLOY_FILE} names format {info.get('format')!r} but its model file is missing")
  return info


def file_size(path: str) -> int:
  """Bytes of an artifact (a SavedModel folder, or the model file(s) of an ONNX / LiteRT / OpenVINO folder)."""
  if os.path.exists(os.path.join(path, DEPLOY_FILE)):
    model = os.path.join(path, MODEL_FILES[read_info(path)["format"]])
    weights = os.path.splitext(model)[0] + ".bin"  # OpenVINO's weights beside its graph.
    return os.path.getsize(model) + (os.path.getsize(weights) if model.endswith(".xml") else 0)
  return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


__all__ = [
  "Artifact",
  "CropKeypoints",
  "FORMATS",
  "LITERT_VARIANTS",
  "MissingExtra",
  "export_artifact",
  "file_size",
  "read_info",
  "require",
]
