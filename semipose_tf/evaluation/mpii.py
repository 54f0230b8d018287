"""MPII PCKh@0.5 against ``gt_valid.mat`` (the standard evaluation of the HRNet / SimpleBaseline code).

Head size = 0.6 x the head-box diagonal; a joint is correct when its distance to the ground truth is at most
0.5 head sizes; per-joint accuracy over visible joints; the groups average left and right; Mean weights the 14
joints other than pelvis and thorax by their visible counts.
"""

from __future__ import annotations

import os
from typing import Callable

import numpy as np
import tensorflow as tf

from semipose_tf.evaluation.inference import predict_persons
from semipose_tf.keypoints import KeypointSpec

# MPII joint indices (gt_valid.mat order, as semipose_tf.keypoints.MPII16).
R_ANK, R_KNE, R_HIP, L_HIP, L_KNE, L_ANK, PELVIS, THORAX, NECK, HEAD, R_WRI, R_ELB, R_SHO, L_SHO, L_ELB, L_WRI = range(
  16
)
GROUPS = (
  ("Head", (HEAD,)),
  ("Shoulder", (L_SHO, R_SHO)),
  ("Elbow", (L_ELB, R_ELB)),
  ("Wrist", (L_WRI, R_WRI)),
  ("Hip", (L_HIP, R_HIP)),
  ("Knee", (L_KNE, R_KNE)),
  ("Ankle", (L_ANK, R_ANK)),
)
NUM_VALID = 2958


def load_ground_truth(gt_file: str) -> dict[str, np.ndarray]:
  """``jnt_missing`` [16, N], ``pos_gt_src`` [16, 2, N], ``headboxes_src`` [2, 2, N] (and ``pos_pred_src``)."""
  from scipy.io import loadmat  # MATLAB v5 files; scipy reads them.
  from scipy.io.matlab import MatReadError

  if not os.path.exists(gt_file):
    raise FileNotFoundError(f"MPII ground truth not found: {gt_file}")
  try:
    gt = loadmat(gt_file)
  except (MatReadError, ValueError, TypeError, OSError, EOFError) as e:
    raise ValueError(f"{gt_file}: not a readable MATLAB file ({e}); --gt takes MPII's gt_valid.mat") from None
  missing = [k for k in ("jnt_missing", "pos_gt_src", "headboxes_src") if k not in gt]
  if missing:
    raise ValueError(f"{gt_file}: no {', '.join(missing)}: not MPII's gt_valid.mat (the standard validation truth)")
  return gt


def pckh(
  predictions: np.ndarray,
  gt_file: str | dict,
  one_based: bool = False,
  threshold: float = 0.5,
  head_factor: float = 0.6,
) -> dict[str, float]:
  """PCKh of predictions [N, 16, 2] in ``gt_valid.mat`` order.

  Args:
    predictions: [2958, 16, 2] (x, y) pixel coordinates.
    gt_file: Path of gt_valid.mat, or what :func:`load_ground_truth` returned for it.
    one_based: True when the coordinates are 1-based (MATLAB, gt_valid.mat's own), False for 0-based (Python:
      what this project's decoder gives); 0-based ones get +1 as the reference does.
    threshold: PCKh threshold (0.5).
    head_factor: Head size = head_factor x head-box diagonal (0.6).

  Returns:
    {"Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Mean"} in percent, and "Mean@0.1".

  Raises:
    ValueError: a prediction array of the wrong shape.
  """
  gt = load_ground_truth(gt_file) if isinstance(gt_file, str) else gt_file
  preds = np.asarray(predictions, np.float64)
  n = gt["pos_gt_src"].shape[2]
  if preds.shape != (n, 16, 2):
    raise ValueError(f"MPII predictions must have shape [{n}, 16, 2] (gt_valid order), got {list(preds.shape)}")
  visible = 1 - gt["jnt_missing"]
  bad = (visible.T > 0) & ~np.isfinite(preds).all(-1)  # [N, 16]
  if bad.any():
    person, joint = (int(v) for v in np.argwhere(bad)[0])
    raise ValueError(f"MPII predictions: person {person} (gt_valid order), joint {joint} is not finite")
  if not one_based:
    preds = preds + 1.0
  pos_pred = np.transpose(preds, [1, 2, 0])  # [16, 2, N]
  err = np.linalg.norm(pos_pred - gt["pos_gt_src"], axis=1)  # [16, N]
  head = np.linalg.norm(gt["headboxes_src"][1] - gt["headboxes_src"][0], axis=0) * head_factor  # [N]
  scaled = err / head[None, :] * visible
  count = visible.sum(axis=1)  # [16]

  def accuracy(thr):
    return 100.0 * ((scaled <= thr) * visible).sum(axis=1) / np.maximum(count, 1)

  acc = accuracy(threshold)
  used = np.ones(16, bool)
  used[[PELVIS, THORAX]] = False
  ratio = np.where(used, count, 0) / count[used].sum()
  out = {name: float(np.mean(acc[list(idx)])) for name, idx in GROUPS}
  out["Mean"] = float(np.sum(acc * ratio))
  out["Mean@0.1"] = float(np.sum(accuracy(0.1) * ratio))
  return out


class MPIIEvaluator:
  """PCKh@0.5 of a predict function on the MPII validation set (converted from the HRNet ``valid.json`` with
  ``--sets eval``), against ``gt_valid.mat``; flip test on by default, as is usual for MPII."""

  def __init__(self, gt_file: str, dataset: tf.data.Dataset, spec: KeypointSpec, flip_test: bool = True):
    self.gt_file, self.dataset, self.spec, self.flip_test = gt_file, dataset, spec, flip_test
    self.gt = load_ground_truth(gt_file)

  @property
  def names(self) -> tuple[str, ...]:
    """What a call returns: each joint group, ``Mean`` and ``Mean@0.1``."""
    return (*(name for name, _ in GROUPS), "Mean", "Mean@0.1")

  def __call__(self, predict_fn: Callable) -> dict[str, float]:
    persons = predict_persons(predict_fn, self.dataset, self.spec, self.flip_test, with_ids=True)
    n = self.gt["pos_gt_src"].shape[2]
    # People the converter left out (no labeled joint) have no visible joint in gt_valid.mat either: (0, 0).
    preds = np.zeros((n, self.spec.num_keypoints, 2))
    for p in persons:  # ann_id is the person's index in valid.json, which is gt_valid.mat's order.
      if p["ann_id"] >= n:
        raise ValueError(
          f"{self.gt_file} has {n} people but the evaluation set has annotation id {p['ann_id']}: "
          "convert the MPII valid.json that goes with it"
        )
      preds[p["ann_id"]] = p["keypoints"][:, :2]
    return pckh(preds, self.gt, one_based=False)


def format_table(result: dict[str, float]) -> str:
  names = [g for g, _ in GROUPS] + ["Mean"]
  return (
    "| "
    + " | ".join(names)
    + " |\n|"
    + "---|" * len(names)
    + "\n| "
    + " | ".join(f"{result[n]:.2f}" for n in names)
    + " |"
  )


def read_array(path: str, names: tuple[str, ...]) -> np.ndarray:
  """An array from ``.npy``, ``.mat`` or ``.h5`` / ``.hdf5`` (the first of ``names`` that the file holds)."""
  if not os.path.exists(path):
    raise FileNotFoundError(f"predictions not found: {path}")
  from scipy.io import loadmat
  from scipy.io.matlab import MatReadError

  try:
    if path.endswith(".npy"):
      return np.asarray(np.load(path), np.float64)
    if path.endswith(".mat"):
      d = loadmat(path)
    elif path.endswith((".h5", ".hdf5")):
      import h5py

      with h5py.File(path, "r") as f:
        d = {k: f[k][()] for k in names if k in f}
    else:
      raise ValueError(f"{path}: predictions must be .npy, .mat or .h5")
  except (MatReadError, EOFError, OSError, TypeError) as e:  # Empty, truncated or another format.
    raise ValueError(f"{path}: not a readable {os.path.splitext(path)[1]} file ({e or type(e).__name__})") from None
  key = next((k for k in names if k in d), None)
  if key is None:
    raise ValueError(f"{path}: no {' or '.join(repr(k) for k in names)} variable")
  return np.asarray(d[key], np.float64)


def load_predictions(path: str) -> np.ndarray:
  """MPII predictions from ``.npy``, ``.mat`` (variable ``preds`` or ``pos_pred_src``) or ``.h5`` (dataset
  ``preds``), as [N, 16, 2] whatever the stored axis order (see :func:`to_person_major`)."""
  return to_person_major(read_array(path, ("preds", "pos_pred_src")), path)


def to_person_major(arr: np.ndarray, where: str = "predictions") -> np.ndarray:
  """[N, 16, 2] from a 3-D array whose axes (people, 16 joints, 2 coordinates) come in any order, as long as the
  order is unambiguous: [16, 2, N] (MATLAB), [2, 16, N] (tompson.h5), [N, 2, 16], ...

  Raises:
    ValueError: not 3-D, no axis of 16 and of 2, or sizes that fit more than one order (N of 2 or 16).
  """
  if arr.ndim != 3:
    raise ValueError(f"{where}: MPII predictions must be 3-D (people, 16 joints, x/y), got shape {list(arr.shape)}")
  shape = list(arr.shape)
  joints = [i for i, n in enumerate(shape) if n == 16]
  coords = [i for i, n in enumerate(shape) if n == 2]
  if len(joints) != 1 or len(coords) != 1:
    raise ValueError(
      f"{where}: cannot tell the axes of shape {shape} apart (need exactly one axis of 16 joints, "
      "one of 2 coordinates and one of people); save it as [N, 16, 2]"
    )
  people = 3 - joints[0] - coords[0]
  return np.transpose(arr, [people, joints[0], coords[0]])
