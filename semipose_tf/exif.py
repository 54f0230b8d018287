"""EXIF orientation: the upright view of a photo as its camera meant it (phones store most photos sideways).

TensorFlow's decoders return the pixels as stored and ignore the orientation tag, so a portrait phone photo comes
out lying on its side. :func:`upright` applies the tag (what viewers and PIL's ``ImageOps.exif_transpose`` show).
Where it matters: ``scripts/predict.py`` works in the user's upright view (its boxes and drawing too). The
SavedModel's ``serving_default`` decodes the bytes as stored, like every TF Serving image model: clients send
upright bytes (docs/deploy.md).
"""

from __future__ import annotations

import struct

import numpy as np

ORIENTATION_TAG = 0x0112


def orientation(data: bytes) -> int:
  """The EXIF orientation (1..8) of JPEG or PNG bytes; 1 (as stored) for other formats, no EXIF or a damaged tag."""
  if data[:8] == b"\x89PNG\r\n\x1a\n":
    return _png_orientation(data)
  if data[:2] != b"\xff\xd8":
    return 1
  i = 2
  while i + 4 <= len(data) and data[i] == 0xFF:
    marker, length = data[i + 1], struct.unpack(">H", data[i + 2 : i + 4])[0]
    if marker == 0xDA:  # Start of scan: no more metadata segments.
      return 1
    if marker == 0xE1 and data[i + 4 : i + 10] == b"Exif\x00\x00":
      return _tiff_orientation(data[i + 10 : i + 2 + length])
    i += 2 + length
  return 1


def _png_orientation(data: bytes) -> int:
  """The orientation in a PNG's ``eXIf`` chunk (its data is the TIFF block, as in a JPEG's APP1 after "Exif")."""
  i = 8
  while i + 8 <= len(data):
    length, kind = struct.unpack(">I", data[i : i + 4])[0], data[i + 4 : i + 8]
    if kind == b"eXIf":
      return _tiff_orientation(data[i + 8 : i + 8 + length])
    if kind == b"IEND":
      break
    i += 12 + length
  return 1


def _tiff_orientation(tiff: bytes) -> int:
  try:
    endian = {b"II": "<", b"MM": ">"}[tiff[:2]]
    offset = struct.unpack(endian + "I", tiff[4:8])[0]
    (count,) = struct.unpack(endian + "H", tiff[offset : offset + 2])
    for k in range(count):
      entry = tiff[offset + 2 + 12 * k : offset + 14 + 12 * k]
      tag, kind = struct.unpack(endian + "HH", entry[:4])
      if tag == ORIENTATION_TAG and kind == 3:  # SHORT, stored in the first two bytes of the value field.
        value = struct.unpack(endian + "H", entry[8:10])[0]
        return value if 1 <= value <= 8 else 1
  except (KeyError, struct.error):
    pass
  return 1


def upright(image: np.ndarray, tag: int) -> np.ndarray:
  """[H, W, C] pixels as stored -> the upright view for EXIF orientation ``tag``."""
  if tag == 2:
    return image[:, ::-1]
  if tag == 3:
    return image[::-1, ::-1]
  if tag == 4:
    return image[::-1]
  if tag == 5:
    return image.transpose(1, 0, 2)
  if tag == 6:
    return np.rot90(image, -1)  # 90 degrees clockwise.
  if tag == 7:
    return image[::-1, ::-1].transpose(1, 0, 2)
  if tag == 8:
    return np.rot90(image, 1)
  return image
