"""Writes that a kill cannot tear: a reader sees the old file (or folder) or the new one, never half of one.

One idiom for everything the project writes: build the new content under a temporary name beside its destination,
then rename it into place (``os.replace`` is atomic within a file system). Files (json, text, pictures), Keras
``.keras`` checkpoints (which also refuse non-finite weights) and whole folders (a TFRecord set, a SavedModel)
go through here; nothing in this module knows the TFRecord schema or the training loop.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Any, Callable

TMP_MARK = ".tmp-"  # Temporary names: "<name>.tmp-XXXX"; left over only by a kill, cleared by the next writer.
OLD_MARK = ".old-"  # A replaced folder, set aside for the instant of the swap.


def _umask() -> int:
  umask = os.umask(0)
  os.umask(umask)
  return umask


def publish(tmp: str, final: str) -> None:
  """Renames a finished temporary file into place with ordinary permissions (``mkstemp`` creates it 0600)."""
  os.chmod(tmp, 0o666 & ~_umask())
  os.replace(tmp, final)


def temporary_file(final: str, suffix: str = "") -> str:
  """A new empty temporary file beside ``final`` (same directory, so the rename stays atomic); its path."""
  directory = os.path.dirname(os.path.abspath(final))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix=os.path.basename(final) + TMP_MARK, suffix=suffix, dir=directory)
  os.close(fd)
  return tmp


def write_with(path: str, write: Callable[[str], None], suffix: str = "") -> None:
  """Calls ``write(tmp)`` on a temporary path beside ``path`` and renames the result into place; on any error
  (or a kill) the old ``path`` stays as it was and the temporary file is removed."""
  tmp = temporary_file(path, suffix)
  try:
    write(tmp)
    publish(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def write_bytes(path: str, data: bytes) -> None:
  """Writes bytes atomically, synced to disk before the rename."""

  def write(tmp):
    with open(tmp, "wb") as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())

  write_with(path, write)


def write_text(path: str, text: str) -> None:
  """Writes UTF-8 text atomically."""
  write_bytes(path, text.encode("utf-8"))


def write_json(path: str, obj: Any, indent: int | None = 2) -> None:
  """Writes JSON atomically."""
  write_text(path, json.dumps(obj, indent=indent))


def staging_directory(directory: str) -> str:
  """A fresh sibling folder to build a new version of ``directory`` in. Leftovers of killed runs are cleared first
  (a complete folder that a kill left set aside, with nothing in its place, is put back)."""
  directory = os.path.abspath(directory)
  parent, base = os.path.dirname(directory), os.path.basename(directory)
  os.makedirs(parent, exist_ok=True)
  for name in os.listdir(parent):
    path = os.path.join(parent, name)
    if name.startswith(base + OLD_MARK) and not os.path.exists(directory):
      os.replace(path, directory)
    elif name.startswith((base + OLD_MARK, base + TMP_MARK)):
      shutil.rmtree(path, ignore_errors=True)
  staging = tempfile.mkdtemp(prefix=base + TMP_MARK, dir=parent)
  # The permissions a plain mkdir gives under the user's umask (mkdtemp makes it 0700): TF Serving running as
  # another user must read a SavedModel, and so must whoever shares a data folder.
  os.chmod(staging, 0o777 & ~_umask())
  return staging


def swap_into_place(staging: str, directory: str) -> None:
  """The complete new folder replaces the old one; at no instant is neither of them whole on disk."""
  directory = os.path.abspath(directory)
  if os.path.exists(directory):
    old = tempfile.mkdtemp(prefix=os.path.basename(directory) + OLD_MARK, dir=os.path.dirname(directory))
    os.rmdir(old)
    os.replace(directory, old)
    os.replace(staging, directory)
    shutil.rmtree(old, ignore_errors=True)
  else:
    os.replace(staging, directory)


def write_directory(directory: str, write: Callable[[str], Any]) -> Any:
  """Calls ``write(staging)`` to build a whole folder aside, then swaps it in for ``directory``; returns what
  ``write`` returned. On an error (or a kill) the old folder stays and the partial one is removed."""
  staging = staging_directory(directory)
  try:
    result = write(staging)
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise
  swap_into_place(staging, directory)
  return result


__all__ = [
  "OLD_MARK",
  "TMP_MARK",
  "publish",
  "staging_directory",
  "swap_into_place",
  "temporary_file",
  "write_bytes",
  "write_directory",
  "write_json",
  "write_text",
  "write_with",
]
