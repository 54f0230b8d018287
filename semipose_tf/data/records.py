"""The TFRecord schema, the atomic sharded writer and the manifest that marks a set complete.

Storage: one ``tf.train.Example`` per *image*, holding the image's encoded bytes once and every selected person
instance of that image as parallel per-instance arrays. The pipeline expands a record into one element per
instance after decoding the image once. Per-instance records would repeat an image's JPEG bytes for every person
in it (COCO has about 2.6 keypoint-labeled people per image), and re-encoded crops would lose quality; storing
each image once keeps a set at ~1.0x its source bytes and decodes each image once per pass.

A set is a directory with ``manifest.json`` and shards ``<set>-SSSSS-of-NNNNN.tfrecord``. Shards are written
under a temporary name and renamed when complete; the manifest is written last, also atomically, and lists
every shard with its size. A reader accepts a set only through its manifest, so a killed converter leaves
nothing a reader would take for complete.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from typing import Any, Iterable

import numpy as np
import tensorflow as tf

from semipose_tf import atomic
from semipose_tf.console import error_text
from semipose_tf.keypoints import KeypointSpec, get_spec

FORMAT = "semipose_tf.tfrecord.v1"
MANIFEST = "manifest.json"


@dataclasses.dataclass
class Instance:
  """One person: box (x, y, w, h) in image pixels, keypoints [K, 3] (x, y, v), detector or GT score."""

  ann_id: int
  bbox: np.ndarray
  keypoints: np.ndarray
  score: float = 1.0
  area: float = 0.0


@dataclasses.dataclass
class ImageEntry:
  """One image file and the instances selected from it."""

  image_id: int
  path: str
  width: int
  height: int
  instances: list[Instance]


def _bytes(values):
  return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))


def _ints(values):
  return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))


def _floats(values):
  return tf.train.Feature(float_list=tf.train.FloatList(value=np.asarray(values, np.float32).ravel()))


def serialize(entry: ImageEntry, encoded: bytes) -> bytes:
  """Serializes an image and its instances to a ``tf.train.Example``."""
  inst = entry.instances
  feats = {
      "image/encoded": _bytes([encoded]),
      "image/filename": _bytes([os.path.basename(entry.path).encode()]),
      "image/id": _ints([entry.image_id]),
      "image/height": _ints([entry.height]),
      "image/width": _ints([entry.width]),
      "instance/id": _ints([i.ann_id for i in inst]),
      "instance/bbox": _floats([i.bbox for i in inst]),
      "instance/keypoints": _floats([i.keypoints for i in inst]),
      "instance/score": _floats([i.score for i in inst]),
      "instance/area": _floats([i.area for i in inst]),
  }
  return tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString()


def parse(serialized: tf.Tensor, num_keypoints: int) -> dict[str, tf.Tensor]:
  """Parses one serialized record (graph op).

  Returns:
    A dict with ``image/encoded`` [] string, ``image/id`` [] int64, ``image/filename`` [] string, ``image/height``
    and ``image/width`` [] int64, and per-instance ``instance/id`` [n] int64, ``instance/bbox`` [n, 4],
    ``instance/keypoints`` [n, K, 3], ``instance/score`` [n], ``instance/area`` [n] float32.
  """
  spec = {
      "image/encoded": tf.io.FixedLenFeature([], tf.string),
      "image/filename": tf.io.FixedLenFeature([], tf.string, default_value=""),
      "image/id": tf.io.FixedLenFeature([], tf.int64),
      "image/height": tf.io.FixedLenFeature([], tf.int64),
      "image/width": tf.io.FixedLenFeature([], tf.int64),
      "instance/id": tf.io.VarLenFeature(tf.int64),
      "instance/bbox": tf.io.VarLenFeature(tf.float32),
      "instance/keypoints": tf.io.VarLenFeature(tf.float32),
      "instance/score": tf.io.VarLenFeature(tf.float32),
      "instance/area": tf.io.VarLenFeature(tf.float32),
  }
  ex = tf.io.parse_single_example(serialized, spec)
  out = {k: v for k, v in ex.items() if not isinstance(v, tf.SparseTensor)}
  for k, v in ex.items():
    if isinstance(v, tf.SparseTensor):
      out[k] = tf.sparse.to_dense(v)
  out["instance/bbox"] = tf.reshape(out["instance/bbox"], [-1, 4])
  out["instance/keypoints"] = tf.reshape(out["instance/keypoints"], [-1, num_keypoints, 3])
  return out


def shard_name(set_name: str, index: int, count: int) -> str:
  return f"{set_name}-{index:05d}-of-{count:05d}.tfrecord"


class ShardWriter:
  """Writes one shard under a temporary name; ``close()`` renames it into place."""

  def __init__(self, directory: str, name: str):
    self.directory = directory
    self.name = name
    self._tmp = atomic.temporary_file(os.path.join(directory, name))
    self._writer = tf.io.TFRecordWriter(self._tmp)
    self.num_images = 0
    self.num_instances = 0

  def write(self, record: bytes, num_instances: int) -> None:
    self._writer.write(record)
    self.num_images += 1
    self.num_instances += num_instances

  def close(self) -> dict[str, Any]:
    self._writer.close()
    final = os.path.join(self.directory, self.name)
    atomic.publish(self._tmp, final)
    return {"file": self.name, "num_images": self.num_images, "num_instances": self.num_instances,
            "bytes": os.path.getsize(final)}

  def abort(self) -> None:
    self._writer.close()
    if os.path.exists(self._tmp):
      os.remove(self._tmp)


class IncompleteSetError(FileNotFoundError):
  """A TFRecord set directory without a valid manifest, or whose shards do not match it."""


def under_root(data_root: str | None, path: str | None) -> str | None:
  """``path`` under ``data_root`` when it is relative and a root is set (the one rule of every ``data_root``)."""
  if path is None or not data_root or os.path.isabs(path):
    return path
  return os.path.join(data_root, path)


def read_manifest(directory: str) -> dict[str, Any]:
  """Loads a set's manifest and checks that every listed shard exists with the recorded size.

  Raises:
    IncompleteSetError: no manifest (the set was never finished, e.g. a converter was killed), or a shard
      missing or of the wrong size.
  """
  path = os.path.join(directory, MANIFEST)
  if not os.path.exists(path):
    raise IncompleteSetError(
        f"{directory}: no {MANIFEST}; this is not a complete TFRecord set (was the conversion interrupted?). "
        "Create it with: python scripts/make_tfrecords.py --help")
  with open(path) as f:
    manifest = json.load(f)
  if manifest.get("format") != FORMAT:
    raise IncompleteSetError(f"{path}: format {manifest.get('format')!r}, expected {FORMAT!r}")
  for key in ("num_instances", "num_images"):  # The totals the pipeline sizes epochs and evaluations by.
    listed = sum(int(shard.get(key, 0)) for shard in manifest["shards"])
    if int(manifest.get(key, -1)) != listed:
      raise IncompleteSetError(f"{path}: {key} is {manifest.get(key)} but its shards add up to {listed}; the "
                               "manifest was edited or damaged: rebuild the set with the converter")
  for shard in manifest["shards"]:
    f = os.path.join(directory, shard["file"])
    if not os.path.exists(f):
      raise IncompleteSetError(f"{directory}: shard {shard['file']} listed in the manifest is missing")
    if os.path.getsize(f) != shard["bytes"]:
      raise IncompleteSetError(f"{f}: {os.path.getsize(f)} bytes, the manifest says {shard['bytes']}")
  return manifest


class RecordSet:
  """One converted set on disk, its manifest and keypoint spec read once and handed along.

  The Task opens each set of a run once (checking it), and the pipeline, the steps-per-epoch count and the
  evaluators read the same handle instead of reading the manifest and resolving the spec again. Every function that
  takes a set's folder also takes a RecordSet (:func:`open_record_set`).

  Args:
    directory: The set's folder (``<data_root>/<dataset>/<set>``), holding ``manifest.json`` and the shards.

  Raises (on first use of :attr:`manifest`):
    IncompleteSetError: see :func:`read_manifest`.
  """

  def __init__(self, directory: str):
    self.directory = directory

  def __repr__(self) -> str:
    return f"RecordSet({self.directory!r})"

  def __fspath__(self) -> str:  # Where a path is expected (os.path.join, open, messages), the set's folder.
    return self.directory

  def __str__(self) -> str:
    return self.directory

  @functools.cached_property
  def manifest(self) -> dict[str, Any]:
    """The manifest, checked against the shards on disk (:func:`read_manifest`), read on first use."""
    return read_manifest(self.directory)

  @functools.cached_property
  def spec(self) -> KeypointSpec:
    """The keypoint spec the set was converted with."""
    return get_spec(self.manifest["keypoint_spec"])

  @property
  def num_instances(self) -> int:
    """People in the set (the manifest's count)."""
    return int(self.manifest["num_instances"])

  @property
  def shard_paths(self) -> list[str]:
    """The shards' paths, in order."""
    return shard_paths(self.directory, self.manifest)

  def check_spec(self, spec: KeypointSpec | None) -> None:
    """Raises ValueError naming both specs when the set's keypoints (names) differ from ``spec``'s."""
    stored = self.spec
    if spec is not None and stored.names != spec.names:
      raise ValueError(
        f"{self.directory} holds keypoint spec {stored.name!r} ({stored.num_keypoints} keypoints), the configured "
        f"spec is {spec.name!r} ({spec.num_keypoints} keypoints): set DataConfig.spec (or the evaluation's spec) to "
        f"{stored.name!r}, or convert the data with --spec {spec.name}"
      )


def open_record_set(data: str | os.PathLike | RecordSet) -> RecordSet:
  """``data`` itself when it is a RecordSet (its manifest already read), else a new handle on that folder."""
  return data if isinstance(data, RecordSet) else RecordSet(os.fspath(data))


class CorruptSetError(ValueError):
  """A shard whose records fail TFRecord's checksums (a flipped byte, a truncated copy)."""


def find_corrupt_shards(directory: str) -> list[tuple[str, str]]:
  """Reads every shard of a set through TFRecord's CRC checks; returns ``[(shard path, error)]`` of bad ones."""
  bad = []
  for path in shard_paths(directory):
    try:
      for _ in tf.data.TFRecordDataset(path, buffer_size=1 << 20):
        pass
    except tf.errors.DataLossError as e:
      bad.append((path, error_text(e) or "unreadable record"))
  return bad


def corrupt_set_error(directories: Iterable[str | None]) -> CorruptSetError | None:
  """The one-line error naming the first corrupt shard among ``directories`` and the command that rebuilds its
  set (the converter's command line, kept in the manifest); None when every shard reads cleanly."""
  for directory in directories:
    if directory and os.path.exists(os.path.join(directory, MANIFEST)):
      bad = find_corrupt_shards(directory)
      if bad:
        path, reason = bad[0]
        more = f" (and {len(bad) - 1} more shard(s) of this set)" if len(bad) > 1 else ""
        command = read_manifest(directory).get("command")
        how = (f"rebuild it: {command}" if command else
               "rebuild it with the converter that made it (python scripts/make_tfrecords.py --help)")
        return CorruptSetError(f"corrupt TFRecord shard {path}{more} ({reason}): the set {directory} cannot be "
                               f"read; {how}")
  return None


def shard_paths(directory: str, manifest: dict[str, Any] | None = None) -> list[str]:
  manifest = manifest or read_manifest(directory)
  return [os.path.join(directory, s["file"]) for s in manifest["shards"]]


def count_instances(paths: Iterable[str], num_keypoints: int) -> int:
  """Counts instances by reading the shards (an independent check of the manifest)."""
  n = 0
  for rec in tf.data.TFRecordDataset(list(paths)):
    n += int(tf.shape(parse(rec, num_keypoints)["instance/id"])[0])
  return n
