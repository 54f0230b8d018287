"""From a :class:`~semipose_tf.conversion.sources.Source` to TFRecord sets: label split, image checks, sharded writing.

Sets:
* ``labeled``: the label budget, ``num_labeled`` instances with at least one labeled keypoint, either the first
  ones in annotation-file order (``split="first"``, the reference's reproducible way) or a seeded random choice
  (``split="random"``); ``None`` takes every candidate (MPII).
* ``unlabeled``: every eligible instance, labels ignored by the pipeline (the labeled ones included, as in the
  reference).
* ``eval``: every instance with labels, in file order (validation sets); for a detection source, every detection
  above the score threshold, with its score (evaluation with detection boxes).

Every image is read and decoded once before it is written (in a thread pool; TensorFlow's decoder releases the
GIL), so an undecodable file or one whose size disagrees with the annotation file is caught here, not in training.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import datetime
import math
import os
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import tensorflow as tf

from semipose_tf import atomic
from semipose_tf.console import Progress
from semipose_tf.conversion.sources import BadInputError, ImageInfo, Problem, Source, report_problems
from semipose_tf.data import records
from semipose_tf.data.records import ImageEntry

SETS = ("labeled", "unlabeled", "eval")

# A stop asked for while images are being read in the thread pool. Raising KeyboardInterrupt from a signal handler
# at an arbitrary bytecode there can land between a lock's acquire and its ``with`` block inside
# concurrent.futures, and the pool's shutdown then waits on that lock forever (a CI run hung 60 s after SIGTERM).
# The handler asks instead; the writing loop raises KeyboardInterrupt itself between two images.
_stop_asked = False
_writing = False


def request_stop() -> bool:
  """Asks a running :func:`write_set` to stop at its next image, as if interrupted there.

  Meant for a signal handler (``scripts/make_tfrecords.py``'s SIGTERM handler). Returns False when no set is being
  written, so the caller raises KeyboardInterrupt at once instead.
  """
  global _stop_asked
  if not _writing:
    return False
  _stop_asked = True
  return True


def read_and_check_image(info: ImageInfo) -> bytes:
  """Reads an image file and decodes it fully; raises BadInputError naming the file when it cannot be used."""
  try:
    with open(info.path, "rb") as f:
      data = f.read()
  except OSError as e:
    raise BadInputError(f"cannot read {info.path}: {e}") from e
  try:
    image = tf.io.decode_image(data, channels=3, expand_animations=False)
  except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as e:
    raise BadInputError(f"{info.path}: not a decodable image ({e.message.splitlines()[0]})") from e
  h, w = int(image.shape[0]), int(image.shape[1])
  if (w, h) != (info.width, info.height):
    raise BadInputError(f"{info.path}: image is {w}x{h}, the annotation file says {info.width}x{info.height}")
  return data


def _ordered_map(fn: Callable, items: Sequence, workers: int) -> Iterator:
  """Like ``executor.map`` but keeps at most ``4 * workers`` results in flight (images can be large)."""
  with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
    pending: collections.deque = collections.deque()
    it = iter(items)
    for item in it:
      pending.append(pool.submit(fn, item))
      if len(pending) >= 4 * workers:
        break
    while pending:
      fut = pending.popleft()
      nxt = next(it, None)
      if nxt is not None:
        pending.append(pool.submit(fn, nxt))
      yield fut


def _safe_check(info: ImageInfo) -> bytes | BadInputError:
  try:
    return read_and_check_image(info)
  except BadInputError as e:
    return e


def select_labeled(
  source: Source,
  num_labeled: int | None,
  split: str = "first",
  seed: int = 0,
  is_good: Callable[[ImageInfo], bool] | None = None,
) -> list[int]:
  """Indices into ``source.items`` of the labeled split, in annotation-file order.

  Args:
    source: The source.
    num_labeled: The label budget; None for every candidate.
    split: "first" (annotation-file order) or "random" (seeded).
    seed: Seed for "random".
    is_good: Optional image check; instances of images it rejects are passed over (``--skip_bad``).

  Raises:
    BadInputError: the split would be empty or the budget exceeds the candidates.
  """
  if split not in ("first", "random"):
    raise ValueError(f"split must be 'first' or 'random', got {split!r}")
  candidates = [i for i, (_, _, has_labels) in enumerate(source.items) if has_labels]
  if split == "random":
    candidates = list(np.random.default_rng(seed).permutation(candidates))
  chosen = []
  for i in candidates:
    if num_labeled is not None and len(chosen) >= num_labeled:
      break
    if is_good is None or is_good(source.items[i][0]):
      chosen.append(int(i))
  where = ", ".join(source.files)
  if not chosen:
    raise BadInputError(
      f"the labeled split is empty: {where} has no usable instance with labeled keypoints (counts: {source.stats})"
    )
  if num_labeled is not None and len(chosen) < num_labeled:
    raise BadInputError(
      f"asked for {num_labeled} labeled instances but {where} has only {len(chosen)} usable "
      "ones; lower --num_labeled or pass --num_labeled all"
    )
  return sorted(chosen)


def group_by_image(source: Source, indices: Iterable[int]) -> list[ImageEntry]:
  """Groups instances by image, images in order of their first instance."""
  entries: dict[ImageInfo, ImageEntry] = {}
  for i in indices:
    info, inst, _ = source.items[i]
    if info not in entries:
      entries[info] = ImageEntry(info.image_id, info.path, info.width, info.height, [])
    entries[info].instances.append(inst)
  return list(entries.values())


def default_num_shards(entries: Sequence[ImageEntry], target_bytes: int = 128 << 20) -> int:
  total = sum(os.path.getsize(e.path) for e in entries if os.path.isfile(e.path))  # Missing ones: reported later.
  return max(1, min(len(entries), math.ceil(total / target_bytes)))


def write_set(
  entries: Sequence[ImageEntry],
  directory: str,
  set_name: str,
  *,
  num_shards: int | None = None,
  skip_bad: bool = False,
  workers: int | None = None,
  verbose: bool = True,
  manifest_extra: dict[str, Any] | None = None,
  _before_write: Callable[[int], None] | None = None,
) -> dict[str, Any]:
  """Writes one set: sharded TFRecords, then the manifest. Returns the manifest.

  Images are checked and read in a thread pool; records are written in order, image i into shard
  ``i * num_shards // len(entries)``. The set is built aside (``<directory>.tmp-*``) and swapped into place when
  complete, so a set already in ``directory`` stays whole until the new one is: bad input or a kill leaves the
  old set as it was (a kill leaves a temporary folder, which the next run deletes).
  """
  if not entries:
    raise BadInputError(f"{directory}: the {set_name} set is empty")
  return atomic.write_directory(
    directory,
    lambda staging: _write_into(
      entries,
      staging,
      set_name,
      num_shards=num_shards,
      skip_bad=skip_bad,
      workers=workers,
      verbose=verbose,
      manifest_extra=manifest_extra,
      before_write=_before_write,
      shown_as=directory,
    ),
  )


def _write_into(
  entries, directory, set_name, *, num_shards, skip_bad, workers, verbose, manifest_extra, before_write, shown_as
) -> dict[str, Any]:
  """:func:`write_set`'s work, into ``directory`` (the staging folder); messages name ``shown_as``."""
  num_shards = num_shards or default_num_shards(entries)
  num_shards = max(1, min(num_shards, len(entries)))
  workers = workers or max(1, min(8, os.cpu_count() or 1))
  writers: list[records.ShardWriter | None] = [None] * num_shards
  shards, problems = [], []
  source_bytes = 0
  progbar = Progress(len(entries), "image") if verbose else None
  if verbose:
    print(
      f"Writing the {set_name} set to {shown_as}: {len(entries)} images, "
      f"{sum(len(e.instances) for e in entries)} instances, {num_shards} shard(s)"
    )
  current = -1
  global _stop_asked, _writing
  _stop_asked, _writing = False, True
  try:
    for i, fut in enumerate(
      _ordered_map(_safe_check, [ImageInfo(e.image_id, e.path, e.width, e.height) for e in entries], workers)
    ):
      if _stop_asked:  # Asked by a signal handler: unwind here, outside the thread pool's locks.
        raise KeyboardInterrupt
      entry = entries[i]
      data = fut.result()
      if isinstance(data, BadInputError):
        bad = [Problem(inst.ann_id, entry.path, str(data)) for inst in entry.instances]
        report_problems(bad, skip_bad, shown_as)
        problems.extend(bad)
      else:
        shard = i * num_shards // len(entries)
        while current < shard:  # Shards complete in order: close the previous one before opening the next.
          if current >= 0:
            shards.append(writers[current].close())
          current += 1
          writers[current] = records.ShardWriter(directory, records.shard_name(set_name, current, num_shards))
        if before_write is not None:
          before_write(i)
        writers[shard].write(records.serialize(entry, data), len(entry.instances))
        source_bytes += len(data)
      if progbar is not None:
        progbar.update(i + 1)
    while current < num_shards - 1:  # Trailing shards whose images were all skipped: written empty.
      if current >= 0:
        shards.append(writers[current].close())
      current += 1
      writers[current] = records.ShardWriter(directory, records.shard_name(set_name, current, num_shards))
    shards.append(writers[current].close())
  except BaseException:
    for w in writers:
      if w is not None:
        w.abort()
    raise
  finally:
    _writing = False
  if _stop_asked:  # Asked for after the last image: the set is not published.
    raise KeyboardInterrupt
  return _publish(directory, set_name, shards, problems, source_bytes, manifest_extra, verbose, shown_as)


def _publish(directory, set_name, shards, problems, source_bytes, manifest_extra, verbose, shown_as) -> dict[str, Any]:
  """Writes the set's manifest into ``directory`` once every shard is closed; returns it."""
  num_instances = sum(s["num_instances"] for s in shards)
  if num_instances == 0:
    raise BadInputError(f"{shown_as}: every image of the {set_name} set was bad; nothing written")
  manifest = {
    "format": records.FORMAT,
    "set": set_name,
    "num_images": sum(s["num_images"] for s in shards),
    "num_instances": num_instances,
    "source_image_bytes": source_bytes,
    "record_bytes": sum(s["bytes"] for s in shards),
    "shards": shards,
    "skipped": [_problem_json(p) for p in problems],
    "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
  }
  manifest.update(manifest_extra or {})
  atomic.write_json(os.path.join(directory, records.MANIFEST), manifest)
  if verbose:
    print(
      f"  {manifest['num_instances']} instances in {manifest['num_images']} images, "
      f"{manifest['record_bytes'] / 1e6:.1f} MB of records for {source_bytes / 1e6:.1f} MB of images"
      + (f", {len(problems)} instance(s) skipped" if problems else "")
    )
  return manifest


def _problem_json(p: Problem) -> dict[str, Any]:
  return {"ann_id": p.ann_id, "file": p.file, "reason": p.reason}


def strip_labels(entries: Sequence[ImageEntry]) -> list[ImageEntry]:
  """The same images and boxes with every keypoint zeroed: an unlabeled set that holds no label at all."""
  return [
    dataclasses.replace(
      e, instances=[dataclasses.replace(inst, keypoints=np.zeros_like(inst.keypoints)) for inst in e.instances]
    )
    for e in entries
  ]


def convert(
  source: Source,
  out_dir: str,
  sets: Sequence[str] = ("labeled", "unlabeled"),
  num_labeled: int | None = None,
  split: str = "first",
  seed: int = 0,
  num_shards: int | None = None,
  skip_bad: bool = False,
  workers: int | None = None,
  verbose: bool = True,
  strip_unlabeled: bool = False,
  command: str | None = None,
) -> dict[str, dict]:
  """Writes the requested sets of a source under ``out_dir/<set>/``; returns their manifests by set name.

  With ``strip_unlabeled`` the unlabeled set's records hold no keypoints (all zero) instead of ignored ones.
  ``command`` (the converter's command line) is kept in each manifest, so an error about a set can say how to
  rebuild it.
  """
  for s in sets:
    if s not in SETS:
      raise ValueError(f"unknown set {s!r}; choose from {SETS}")
  checked: dict[ImageInfo, bool] = {}

  def is_good(info: ImageInfo) -> bool:
    if info not in checked:
      checked[info] = not isinstance(_safe_check(info), BadInputError)
    return checked[info]

  common = {
    "keypoint_spec": source.spec.to_json(),
    "source": {
      "kind": source.kind,
      "files": [os.path.abspath(f) for f in source.files],
      "image_dir": os.path.abspath(source.image_dir),
      "stats": source.stats,
      "skipped_annotations": [_problem_json(p) for p in source.problems],
    },
  }
  if command:
    common["command"] = command
  out = {}
  for set_name in sets:
    if set_name == "labeled":
      idx = select_labeled(source, num_labeled, split, seed, is_good if skip_bad else None)
      extra = {
        "split": {"mode": split, "num_labeled": num_labeled, "seed": seed if split == "random" else None},
        "labels": "used",
      }
    elif set_name == "unlabeled":
      idx = range(len(source.items))
      extra = {
        "split": {"mode": split, "num_labeled": num_labeled, "seed": seed if split == "random" else None}
        if "labeled" in sets
        else None,
        "labels": "removed from the records" if strip_unlabeled else "ignored",
      }
    else:  # Evaluation: labeled persons with their ground-truth boxes, or every detection box (and its score).
      idx = [i for i, it in enumerate(source.items) if it[2] or source.kind == "detections"]
      extra = {"labels": "used" if source.kind != "detections" else "none (detection boxes)"}
    entries = group_by_image(source, idx)
    if set_name == "unlabeled" and strip_unlabeled:
      entries = strip_labels(entries)
    out[set_name] = write_set(
      entries,
      os.path.join(out_dir, set_name),
      set_name,
      num_shards=num_shards,
      skip_bad=skip_bad,
      workers=workers,
      verbose=verbose,
      manifest_extra={**common, **extra},
    )
  return out
