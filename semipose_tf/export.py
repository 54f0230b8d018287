"""Inference in one TensorFlow graph, and its SavedModel export for TF Serving.

Signatures of the exported SavedModel:

* ``serving_default``: ``images`` [N] string (JPEG or PNG bytes) and ``boxes`` [N, 4] float32 (one person box
  per image, x, y, w, h in pixels) -> ``keypoints`` [N, K, 2] float32 (x, y in image pixels) and ``scores``
  [N, K] float32. Decoding, cropping (the evaluation crop: box -> centre / scale with ``codec.PADDING``), ImageNet
  normalization, the network and heatmap decoding all run inside the graph. Bytes that are neither JPEG nor PNG,
  and images with more pixels than ``max_pixels`` (checked from the header, before decoding: a decompression bomb
  never reaches the decoder), fail with an InvalidArgumentError that says which.
* ``heatmaps``: ``crops`` [N, H, W, 3] float32 (normalized crops) -> ``heatmaps`` [N, H/4, W/4, K] float32.

The network's keypoint spec (names, flip pairs, skeleton, sigmas) is written beside the graph as
``assets.extra/keypoint_spec.json`` (the folder SavedModel reserves for such files; TF Serving ignores it), so a
client or :func:`load_inference` knows what the K outputs are.
"""

from __future__ import annotations

import json
import os
from typing import Callable

import keras
import tensorflow as tf

from semipose_tf import atomic, codec
from semipose_tf.keypoints import KeypointSpec, get_spec

DEFAULT_MAX_PIXELS = 40_000_000
SPEC_FILE = os.path.join("assets.extra", "keypoint_spec.json")
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def encoded_image_size(data: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
  """(is_supported, height, width) from a JPEG or PNG header, without decoding the pixels."""
  is_jpeg = tf.io.is_jpeg(data)
  is_png = tf.equal(tf.strings.substr(data, 0, 8), _PNG_MAGIC) & (tf.strings.length(data) >= 24)

  def jpeg():
    shape = tf.cast(tf.io.extract_jpeg_shape(data), tf.int64)
    return shape[0], shape[1]

  def png():  # IHDR: width then height, big-endian uint32, at bytes 16..24.
    raw = tf.cast(tf.io.decode_raw(tf.strings.substr(data, 16, 8), tf.uint8), tf.int64)
    width = raw[0] * 2**24 + raw[1] * 2**16 + raw[2] * 2**8 + raw[3]
    height = raw[4] * 2**24 + raw[5] * 2**16 + raw[6] * 2**8 + raw[7]
    return height, width

  def neither():
    return tf.constant(0, tf.int64), tf.constant(0, tf.int64)

  h, w = tf.cond(is_jpeg, jpeg, lambda: tf.cond(is_png, png, neither))
  return is_jpeg | is_png, h, w


class PoseInference(tf.Module):
  """The inference graph around a pose network (used by the export, ``scripts/predict.py`` and tests).

  Args:
    net: A pose network (normalized crops [N, H, W, 3] -> heatmaps [N, H/4, W/4, K]).
    max_pixels: Largest accepted image (width x height), checked before decoding.
    padding: Box padding of box -> centre / scale (``codec.PADDING``, as in training).
  """

  def __init__(self, net: keras.Model, max_pixels: int = DEFAULT_MAX_PIXELS, padding: float = codec.PADDING):
    super().__init__()
    self.net = net
    if None in tuple(net.input_shape[1:3]):
      raise ValueError("export needs a network with a fixed input size")
    self.geometry = codec.HeatmapCodec.of_network(net, padding)  # The training pipeline's crop geometry.
    self.input_size = self.geometry.input_size
    self.max_pixels = int(max_pixels)

  def crops(self, images: tf.Tensor, boxes: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Normalized crops [N, H, W, 3] and their centres / scales [N, 2] from encoded images and boxes.

    Raises (when run):
      InvalidArgumentError: bytes that are neither JPEG nor PNG, an image over ``max_pixels``, or a box that is not
        finite, has no positive width and height, or lies outside its image; the message gives the box's index.
    """

    def one(args):
      data, box, index = args
      supported, h, w = encoded_image_size(data)
      x, y, bw, bh = box[0], box[1], box[2], box[3]
      hf, wf = tf.cast(h, tf.float32), tf.cast(w, tf.float32)
      say = lambda text, *args: [tf.strings.format(text, args)]  # One readable message per check.
      checks = [
        tf.debugging.Assert(supported, say("input {} is not a JPEG or PNG image", index)),
        tf.debugging.Assert(
          h * w <= self.max_pixels,
          say("image too large: input {} is {} x {} pixels; the limit is {}", index, h, w, self.max_pixels),
        ),
        tf.debugging.Assert(tf.reduce_all(tf.math.is_finite(box)), say("box {} is not finite: {}", index, box)),
        tf.debugging.Assert(
          (bw > 0) & (bh > 0), say("box {} has no positive width and height (x, y, w, h): {}", index, box)
        ),
        tf.debugging.Assert(
          (x < wf) & (y < hf) & (x + bw > 0) & (y + bh > 0),
          say("box {} lies outside its {} x {} image: {}", index, w, h, box),
        ),
      ]
      # The decoder must wait for the checks: without the dependency the graph may run it first on a bomb.
      with tf.control_dependencies(checks):
        image = tf.io.decode_image(tf.identity(data), channels=3, expand_animations=False)
      # The converters' box rule, then the evaluation pipeline's crop: a request crops what evaluation scored.
      box = tf.stack(codec.sanitize_box(x, y, bw, bh, wf, hf, tf.maximum, tf.minimum))
      crop = self.geometry.eval_crop(image, box)
      return crop["image"], crop["center"], crop["scale"]

    sig = (
      tf.TensorSpec(self.input_size + (3,), tf.float32),
      tf.TensorSpec([2], tf.float32),
      tf.TensorSpec([2], tf.float32),
    )
    index = tf.range(tf.shape(images, out_type=tf.int64)[0])
    return tf.map_fn(one, (images, tf.cast(boxes, tf.float32), index), fn_output_signature=sig)

  def keypoints(self, images: tf.Tensor, boxes: tf.Tensor) -> dict[str, tf.Tensor]:
    """``keypoints`` [N, K, 2] in image pixels and ``scores`` [N, K] for one box per encoded image (N may be 0)."""
    tf.debugging.assert_equal(tf.shape(images)[0], tf.shape(boxes)[0], message="one box per image")
    k = int(self.net.output_shape[-1])

    def run():
      crops, center, scale = self.crops(images, boxes)
      return self.geometry.decode(self.net(crops, training=False), center, scale)

    def empty():  # An empty request gets empty answers (the network cannot run on zero crops).
      return tf.zeros([0, k, 2], tf.float32), tf.zeros([0, k], tf.float32)

    coords, scores = tf.cond(tf.shape(images)[0] > 0, run, empty)
    return {"keypoints": coords, "scores": scores}

  def heatmaps(self, crops: tf.Tensor) -> dict[str, tf.Tensor]:
    return {"heatmaps": tf.cast(self.net(crops, training=False), tf.float32)}


def export_saved_model(net: keras.Model, path: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> str:
  """Writes a SavedModel with the ``serving_default`` and ``heatmaps`` signatures (see the module docstring) and,
  when the network carries one, its keypoint spec as ``assets.extra/keypoint_spec.json``.

  TF Serving expects ``<model_base_path>/<version>/``: pass e.g. ``exports/pose/1``. The SavedModel is built
  beside ``path`` and swapped in whole: a server watching the folder never loads half of one.
  """
  return atomic.write_directory(path, lambda staging: _write_saved_model(net, staging, max_pixels) and path)


def _write_saved_model(net: keras.Model, path: str, max_pixels: int) -> str:
  module = PoseInference(net, max_pixels)
  h, w = module.input_size
  archive = keras.export.ExportArchive()
  archive.track(net)
  archive.add_endpoint(
    "serving_default",
    module.keypoints,
    input_signature=[
      tf.TensorSpec([None], tf.string, name="images"),
      tf.TensorSpec([None, 4], tf.float32, name="boxes"),
    ],
  )
  archive.add_endpoint(
    "heatmaps", module.heatmaps, input_signature=[tf.TensorSpec([None, h, w, 3], tf.float32, name="crops")]
  )
  archive.write_out(path, verbose=False)
  spec = getattr(net, "keypoint_spec", None)
  if spec is not None:
    os.makedirs(os.path.join(path, "assets.extra"), exist_ok=True)
    with open(os.path.join(path, SPEC_FILE), "w") as f:
      json.dump(spec.to_json(), f, indent=1)
  return path


KeypointsFn = Callable[[tf.Tensor, tf.Tensor], dict]


def load_inference(path: str) -> tuple[KeypointsFn, KeypointSpec | None]:
  """``(keypoints(images, boxes), keypoint spec or None)`` from a SavedModel directory or a ``.keras`` network."""
  if os.path.isdir(path):
    loaded = tf.saved_model.load(path)
    serve = loaded.signatures["serving_default"]
    spec = None
    if os.path.exists(os.path.join(path, SPEC_FILE)):
      with open(os.path.join(path, SPEC_FILE)) as f:
        spec = get_spec(json.load(f))

    def keypoints(images, boxes):
      return serve(images=tf.convert_to_tensor(images), boxes=tf.convert_to_tensor(boxes, tf.float32))

    return keypoints, spec
  from semipose_tf.models.factory import load_network

  net = load_network(path, "model")
  return PoseInference(net).keypoints, getattr(net, "keypoint_spec", None)
