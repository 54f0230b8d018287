"""A table's shared start, kept with its records, so that the table can be finished on another machine.

Every row of an LSPET table starts from one supervised network (the burn-in). Training is deterministic on one
machine, not across machines: the ImageNet table's first start was lost with its machine, and the same commit and
seed retrained on the next one read 5.7 PCK@0.2 after epoch 1 instead of 6.2. A start retrained elsewhere is
another start, and rows from two starts are not paired. So once trained, the start's weights (no optimizer state:
every row starts a fresh optimizer) are kept beside the records as ``burn_in.keras``, and a checkout that has the
records but no trained start puts that file in its work folder instead of training a new one.
"""

from __future__ import annotations

import os
import shutil

from semipose_tf import atomic

START = "burn_in.keras"


def keep_start(final: str, records: str) -> str:
  """Writes the weights of the trained start ``final`` (a ``.keras`` network) to ``<records>/burn_in.keras``.

  Written aside and moved into place (``semipose_tf.atomic``), so a killed copy never leaves half a network.
  Returns the kept path; an existing kept start is left as it is (it is the table's start, whatever the work folder
  holds now).
  """
  import keras

  import semipose_tf.models  # noqa: F401  (registers the network classes for loading)

  kept = os.path.join(records, START)
  if os.path.exists(kept):
    return kept
  os.makedirs(records, exist_ok=True)
  net = keras.models.load_model(final, compile=False)  # Uncompiled: saved without the optimizer's slots.
  atomic.write_with(kept, net.save, suffix=".keras")  # Keras picks the format from the suffix.
  return kept


def restore_start(work_dir: str, records: str) -> bool:
  """Puts the kept start and its record into ``work_dir`` (the burn-in's work folder) when it has no trained start.

  Returns True when it restored one. The record (``burn_in.json``) goes to ``benchmark.json`` beside
  ``checkpoints/final.keras``, which is how a benchmark recognises a finished run.
  """
  kept, record = os.path.join(records, START), os.path.join(records, "burn_in.json")
  final = os.path.join(work_dir, "checkpoints", "final.keras")
  if os.path.exists(final) or not (os.path.exists(kept) and os.path.exists(record)):
    return False
  atomic.write_with(final, lambda tmp: shutil.copyfile(kept, tmp))
  atomic.write_with(os.path.join(work_dir, "benchmark.json"), lambda tmp: shutil.copyfile(record, tmp))
  return True
