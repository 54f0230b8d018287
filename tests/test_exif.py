"""EXIF orientation: our reader and transform give the upright view PIL's ImageOps.exif_transpose gives; predict.py
works in that view; the serving signature decodes bytes as stored (clients send upright bytes)."""

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT

from semipose_tf import exif

PIL = pytest.importorskip("PIL", reason="Pillow (installed with tensorboard) is the independent reference")
from PIL import Image, ImageOps  # noqa: E402


def _jpeg(pixels: np.ndarray, tag: int | None, big_endian: bool = False) -> bytes:
  out = io.BytesIO()
  image = Image.fromarray(pixels)
  if tag is None:
    image.save(out, "JPEG", quality=95)
  else:
    info = Image.Exif()
    info[exif.ORIENTATION_TAG] = tag
    info[0x010F] = "camera"  # Another tag before it, so the reader walks the IFD.
    image.save(out, "JPEG", quality=95, exif=info.tobytes())
  data = out.getvalue()
  if big_endian:  # PIL writes little-endian TIFF; rewrite the orientation entry in a big-endian header.
    data = data.replace(b"Exif\x00\x00II*\x00", b"Exif\x00\x00MM\x00*", 1)
  return data


@pytest.mark.parametrize("tag", range(1, 9))
def test_upright_view_equals_pil(tag):
  rng = np.random.default_rng(tag)
  pixels = (rng.integers(0, 8, (6, 10, 3)) * 32).astype(np.uint8)  # Coarse values: JPEG keeps them apart.
  pixels = np.kron(pixels, np.ones((8, 8, 1), np.uint8))  # 48 x 80, blocks survive compression.
  data = _jpeg(pixels, tag)
  assert exif.orientation(data) == tag
  import tensorflow as tf

  stored = tf.io.decode_jpeg(data).numpy()
  ours = exif.upright(stored, tag)
  theirs = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))))
  assert ours.shape == theirs.shape
  assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= 8  # Decoder rounding only.


@pytest.mark.parametrize("tag", [3, 6, 8])
def test_a_png_with_an_exif_chunk_is_turned_upright_as_pil_turns_it(tag):
  """PNG's eXIf chunk was ignored (only a JPEG's orientation was honoured)."""
  pixels = (np.random.default_rng(tag).integers(0, 255, (12, 20, 3))).astype(np.uint8)
  info = Image.Exif()
  info[exif.ORIENTATION_TAG] = tag
  out = io.BytesIO()
  Image.fromarray(pixels).save(out, "PNG", exif=info.tobytes())
  data = out.getvalue()
  assert exif.orientation(data) == tag
  theirs = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))))
  np.testing.assert_array_equal(exif.upright(pixels, tag), theirs)  # Lossless: exactly.


def test_no_exif_or_not_a_jpeg_is_as_stored():
  pixels = np.zeros((16, 16, 3), np.uint8)
  assert exif.orientation(_jpeg(pixels, None)) == 1
  assert exif.orientation(b"\x89PNG\r\n\x1a\n....") == 1
  assert exif.orientation(b"\xff\xd8\xff\xe1\x00\x10Exif\x00\x00XX") == 1  # Damaged: as stored, no error.


@pytest.mark.slow
def test_predict_uses_the_upright_view_and_serving_the_stored_one(tmp_path):
  """A portrait photo stored sideways (orientation 6): predict.py accepts a box inside the upright 40 x 64 view and
  draws upright; the SavedModel sent the same bytes sees the stored 64 x 40 image."""
  import tensorflow as tf

  from semipose_tf import export
  from semipose_tf.keypoints import COCO17
  from semipose_tf.models import build_pose_model

  upright_pixels = np.kron(np.arange(8 * 5 * 3).reshape(8, 5, 3) % 7 * 36, np.ones((8, 8, 1))).astype(
    np.uint8
  )  # 64 tall, 40 wide: what the user sees.
  stored = np.rot90(upright_pixels, 1)  # What the camera wrote: rotated, with orientation 6 to undo it.
  photo = str(tmp_path / "phone.jpg")
  open(photo, "wb").write(_jpeg(np.ascontiguousarray(stored), 6))
  net = build_pose_model("resnet18", (64, 64), 17, width=8, deconv_filters=(16, 16, 16))
  net.keypoint_spec = COCO17
  model = export.export_saved_model(net, str(tmp_path / "sm" / "1"))
  out = str(tmp_path / "pred")
  r = subprocess.run(
    [
      sys.executable,
      os.path.join(ROOT, "scripts", "predict.py"),
      "--model",
      model,
      "--image",
      photo,
      "--boxes",
      "2,45,36,18",
      "--out",
      out,
      "--min_size",
      "0",
    ],
    capture_output=True,
    text=True,
  )
  assert r.returncode == 0, r.stderr[-2000:]
  drawn = tf.io.decode_png(tf.io.read_file(out + ".png")).numpy()
  assert drawn.shape[:2] == (64, 40)  # Upright.
  people = json.load(open(out + ".json"))["people"]
  serve = tf.saved_model.load(model).signatures["serving_default"]
  # predict.py's keypoints are the model's on the upright pixels.
  upright_bytes = tf.io.encode_png(exif.upright(tf.io.decode_jpeg(open(photo, "rb").read()).numpy(), 6).copy())
  want = serve(images=tf.reshape(upright_bytes, [1]), boxes=tf.constant([[2.0, 45.0, 36.0, 18.0]]))["keypoints"]
  assert len(people) == 1
  np.testing.assert_allclose(people[0]["keypoints"], want.numpy()[0], atol=0.01)
  # The serving signature takes the bytes as stored (64 wide, 40 tall): the upright box starting at y = 45 lies
  # outside it. Clients send upright bytes.
  with pytest.raises(tf.errors.InvalidArgumentError, match="lies outside its 64 x 40 image"):
    serve(images=tf.constant([open(photo, "rb").read()]), boxes=tf.constant([[2.0, 45.0, 36.0, 18.0]]))
