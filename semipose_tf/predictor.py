"""From a photo and person boxes to keypoints in image pixels, for every format a network is kept or deployed in.

  from semipose_tf.predictor import Predictor

  predictor = Predictor("exports/pose_onnx")  # a .keras file, a SavedModel, an ONNX / LiteRT / OpenVINO folder
  people = predictor("photo.jpg", [[10, 20, 150, 300]])  # boxes x, y, w, h in image pixels
  people["keypoints"]  # [N, K, 2] x, y in image pixels; people["scores"] [N, K]; predictor.spec names the K

Every format runs the same rules as the evaluation and the SavedModel's ``serving_default``:

1. the image is decoded (JPEG or PNG, path or bytes; or a uint8 [H, W, 3] array) and turned upright by its EXIF
   orientation, as a viewer shows it (the boxes are in that view);
2. each box is checked (finite, positive width and height, overlapping the image) and sanitized by the
   converters' rule (``codec.sanitize_box``);
3. the evaluation crop (``HeatmapCodec.eval_crop``: box -> centre / scale with the padding, the crop affine, ImageNet
   normalization) is taken at the network's input size;
4. the format's runtime gives heatmaps (:class:`HeatmapModel`), which are decoded and mapped back through the
   inverse crop affine (``codec.decode_to_image``).

Steps 1-3 and 4's decoding run in TensorFlow here, so a float format gives the SavedModel's keypoints (the
difference is the runtimes' float rounding of the heatmaps); only the network runs in the format's own runtime.
"""

from __future__ import annotations

import json
import math
import os
from typing import Sequence

import numpy as np
import tensorflow as tf

from semipose_tf import codec, deploy, exif
from semipose_tf.keypoints import KeypointSpec, get_spec

DEFAULT_MAX_PIXELS = 40_000_000  # As the SavedModel's (semipose_tf.export).
FORMATS = ("keras",) + deploy.FORMATS
SAVED_MODEL_SPEC = os.path.join("assets.extra", "keypoint_spec.json")


class HeatmapModel:
  """A pose network in any format: normalized crops [N, H, W, 3] -> heatmaps [N, H/stride, W/stride, K] (numpy).

  Attributes:
    path: Where it was loaded from.
    format: "keras", "saved_model", "onnx", "litert" or "openvino".
    geometry: Its input size, stride and box padding.
    spec: The keypoint spec it carries, or None.
  """

  def __init__(self, path: str):
    self.path = path
    self.format = model_format(path)
    self.spec: KeypointSpec | None = None
    if self.format == "keras":
      from semipose_tf.models.factory import load_network

      net = load_network(path, "model")  # Refuses non-finite weights, names the file.
      self._fn = tf.function(lambda x: net(x, training=False), reduce_retracing=True)
      self.geometry = codec.HeatmapCodec.of_network(net)
      self.spec = getattr(net, "keypoint_spec", None)
    elif self.format == "saved_model":
      signature = tf.saved_model.load(path).signatures["heatmaps"]
      self._fn = lambda x: signature(crops=tf.convert_to_tensor(x, tf.float32))["heatmaps"]
      h, w = signature.structured_input_signature[1]["crops"].shape[1:3]
      hh = signature.structured_outputs["heatmaps"].shape[1]
      self.geometry = codec.HeatmapCodec((h, w), int(h) // int(hh))
      if os.path.exists(os.path.join(path, SAVED_MODEL_SPEC)):
        with open(os.path.join(path, SAVED_MODEL_SPEC)) as f:
          self.spec = get_spec(json.load(f))
    else:
      artifact = deploy.Artifact(path)
      self._fn = artifact.predict
      info = artifact.info
      self.geometry = codec.HeatmapCodec(tuple(info["input_size"]), int(info["stride"]), float(info["padding"]))
      self.spec = artifact.spec

  def __call__(self, crops) -> np.ndarray:
    return np.asarray(self._fn(np.asarray(crops, np.float32)), np.float32)


def model_format(path: str) -> str:
  """The format of ``path`` from what is there (one-line errors for what is none of them)."""
  if os.path.isfile(path):
    if path.endswith(".keras"):
      return "keras"
    raise ValueError(f"{path} is not a model: a .keras file, a SavedModel folder or an exported artifact folder")
  if os.path.isdir(path):
    if os.path.exists(os.path.join(path, "saved_model.pb")):
      return "saved_model"
    if os.path.exists(os.path.join(path, deploy.DEPLOY_FILE)):
      return deploy.read_info(path)["format"]
    raise ValueError(
      f"{path} is a folder with neither saved_model.pb nor {deploy.DEPLOY_FILE}: not a SavedModel or an artifact "
      "written by scripts/export.py"
    )
  raise FileNotFoundError(f"{path} does not exist")


def read_image(image, name: str = "image", max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
  """An upright uint8 [H, W, 3] image from a path, encoded bytes (JPEG or PNG) or an array (taken as it is).

  Raises:
    ValueError: empty, unreadable or too large (checked from the header, before decoding), naming ``name``.
  """
  if isinstance(image, np.ndarray):
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
      raise ValueError(f"{name}: an array image is uint8 [H, W, 3]; got {image.dtype} {list(image.shape)}")
    return image
  if isinstance(image, (str, os.PathLike)):
    name = os.fspath(image)
    with open(image, "rb") as f:
      data = f.read()
  else:
    data = bytes(image)
  if not data:
    raise ValueError(f"{name} is empty (0 bytes)")
  from semipose_tf.export import encoded_image_size

  supported, h, w = (int(v) for v in encoded_image_size(tf.constant(data)))
  if not supported:
    raise ValueError(f"{name} is not a JPEG or PNG image")
  if h * w > max_pixels:
    raise ValueError(f"{name} is {w} x {h} pixels; the limit is {max_pixels}")
  try:
    pixels = tf.io.decode_image(data, channels=3, expand_animations=False).numpy()
  except tf.errors.InvalidArgumentError as e:
    raise ValueError(f"{name} cannot be decoded (truncated or damaged?): {e.message.splitlines()[0]}") from None
  turn = exif.orientation(data)
  return np.ascontiguousarray(exif.upright(pixels, turn)) if turn != 1 else pixels


def check_boxes(boxes, width: int, height: int) -> np.ndarray:
  """Boxes [N, 4] (x, y, w, h) as float32, each finite, with w, h > 0 and overlapping the image; else ValueError
  naming the box (the SavedModel's checks)."""
  array = np.asarray(boxes, np.float64).reshape(-1, 4) if len(boxes) else np.zeros((0, 4))
  for i, (x, y, w, h) in enumerate(array):
    box = [float(v) for v in (x, y, w, h)]
    if not all(math.isfinite(v) for v in box):
      raise ValueError(f"box {i} is not finite: {box}")
    if w <= 0 or h <= 0:
      raise ValueError(f"box {i} has no positive width and height (x, y, w, h): {box}")
    if not (x < width and y < height and x + w > 0 and y + h > 0):
      raise ValueError(f"box {i} lies outside its {width} x {height} image: {box}")
  return array.astype(np.float32)


class Predictor:
  """Image + person boxes -> keypoints [N, K, 2] in image pixels and scores [N, K], for any format.

  Args:
    model: A path (.keras, SavedModel folder, ONNX / LiteRT / OpenVINO artifact folder) or a :class:`HeatmapModel`.
    batch_size: Crops per call of the runtime.
    max_pixels: The largest image accepted (width x height).
  """

  def __init__(self, model, batch_size: int = 32, max_pixels: int = DEFAULT_MAX_PIXELS):
    self.model = model if isinstance(model, HeatmapModel) else HeatmapModel(os.fspath(model))
    self.batch_size, self.max_pixels = int(batch_size), int(max_pixels)

  @property
  def spec(self) -> KeypointSpec | None:
    return self.model.spec

  @property
  def format(self) -> str:
    return self.model.format

  def crops(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normalized crops [N, H, W, 3], centres [N, 2] and scales [N, 2] of checked boxes in an upright image."""
    height, width = image.shape[:2]
    pixels = tf.constant(image)
    out = []
    for box in boxes:
      # In float32 tensors, as the SavedModel's graph computes it, so that both crop the same pixels.
      b = tf.constant(box, tf.float32)
      clean = codec.sanitize_box(b[0], b[1], b[2], b[3], float(width), float(height), tf.maximum, tf.minimum)
      out.append(self.model.geometry.eval_crop(pixels, tf.stack(clean)))
    return tuple(np.stack([o[k].numpy() for o in out]) for k in ("image", "center", "scale"))

  def __call__(self, image, boxes: Sequence[Sequence[float]]) -> dict[str, np.ndarray]:
    """Keypoints of the people in ``boxes``.

    Args:
      image: A path, JPEG / PNG bytes, or an upright uint8 [H, W, 3] array.
      boxes: [N, 4] person boxes (x, y, w, h) in the upright image's pixels; N may be 0.

    Returns:
      ``keypoints`` float32 [N, K, 2] (x, y in image pixels), ``scores`` float32 [N, K] (heatmap maxima),
      ``boxes`` float32 [N, 4] (as given).
    """
    pixels = read_image(image, max_pixels=self.max_pixels)
    boxes = check_boxes(boxes, pixels.shape[1], pixels.shape[0])
    if not len(boxes):
      k = self.spec.num_keypoints if self.spec else 0
      return {"keypoints": np.zeros((0, k, 2), np.float32), "scores": np.zeros((0, k), np.float32), "boxes": boxes}
    crops, center, scale = self.crops(pixels, boxes)
    heatmaps = np.concatenate(
      [self.model(crops[i : i + self.batch_size]) for i in range(0, len(crops), self.batch_size)]
    )
    keypoints, scores = self.model.geometry.decode(tf.constant(heatmaps), tf.constant(center), tf.constant(scale))
    return {"keypoints": keypoints.numpy(), "scores": scores.numpy(), "boxes": boxes}


__all__ = ["FORMATS", "HeatmapModel", "Predictor", "check_boxes", "model_format", "read_image"]
