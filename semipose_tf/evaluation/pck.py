"""PCK with respect to the torso (the LSP metric): PCK@0.2 and PCK@0.1, per joint group and mean.

A joint is correct when its predicted position lies within ``threshold x torso diameter`` of the ground truth.
The torso diameter is the distance from the person's **left shoulder to their right hip**, the definition of the
LSP evaluations that report "PCK@0.2 (torso)" (e.g. Pishchulin et al., DeepCut, CVPR 2016, and the LSP results
of the works that compare with it). Only annotated joints are scored; a person whose left shoulder or right hip
is not annotated has no torso and is left out (counted in ``skipped``). Groups: Head (head top and neck, or the
face points of a layout without them), Shoulder, Elbow, Wrist, Hip, Knee, Ankle; each group and "PCK" (the mean)
average over the annotated joints they hold, in percent.

Works for any spec whose names include ``left_shoulder`` and ``right_hip`` (``lsp14``, ``coco17``, ``mpii16``,
``aic14``).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import tensorflow as tf

from semipose_tf.conversion import lsp
from semipose_tf.data import pipeline, records
from semipose_tf.evaluation.inference import predict_persons
from semipose_tf.evaluation.mpii import read_array
from semipose_tf.keypoints import LSP14, KeypointSpec

GROUP_NAMES = ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle")
_HEAD = ("head_top", "neck", "upper_neck", "nose")


def groups(spec: KeypointSpec) -> dict[str, list[int]]:
  """Joint indices of each group present in ``spec`` (by keypoint name)."""
  out: dict[str, list[int]] = {}
  head = [i for i, n in enumerate(spec.names) if n in _HEAD]
  if head:
    out["Head"] = head
  for group in GROUP_NAMES[1:]:
    idx = [i for i, n in enumerate(spec.names) if n.endswith("_" + group.lower())]
    if idx:
      out[group] = idx
  return out


def torso_joints(spec: KeypointSpec) -> tuple[int, int]:
  """Indices of the left shoulder and the right hip."""
  try:
    return spec.names.index("left_shoulder"), spec.names.index("right_hip")
  except ValueError:
    raise ValueError(
      f"PCK (torso) needs 'left_shoulder' and 'right_hip' keypoints; spec {spec.name!r} has {list(spec.names)}"
    ) from None


def correct_joints(
  predictions: np.ndarray, ground_truth: np.ndarray, annotated: np.ndarray, spec: KeypointSpec, threshold: float = 0.2
) -> tuple[np.ndarray, np.ndarray]:
  """Which joints are within ``threshold`` x the torso of the ground truth.

  Args:
    predictions: [N, K, 2] predicted (x, y), in the ground truth's pixel frame.
    ground_truth: [N, K, 2] annotated (x, y).
    annotated: [N, K] bool, True where the joint is annotated.
    spec: The keypoint spec (its names give the torso).
    threshold: Fraction of the torso diameter, or a sequence of T fractions.

  Returns:
    (correct, scored): correct [N, K] bool ([T, N, K] for T thresholds), within scored [N, K] bool = annotated
    joints of people with a torso.

  Raises:
    ValueError: shapes that do not match, non-finite predictions of annotated joints, or no person to score.
  """
  preds = np.asarray(predictions, np.float64)
  gt = np.asarray(ground_truth, np.float64)
  ann = np.asarray(annotated, bool)
  n, k = ann.shape
  if preds.shape != (n, k, 2) or gt.shape != (n, k, 2) or k != spec.num_keypoints:
    raise ValueError(
      f"PCK: predictions {list(preds.shape)} and ground truth {list(gt.shape)} must both be "
      f"[{n}, {spec.num_keypoints}, 2] for spec {spec.name!r}"
    )
  bad = ann & ~np.isfinite(preds).all(-1)
  if bad.any():
    person, joint = np.argwhere(bad)[0]
    raise ValueError(f"PCK: the prediction of person {person}, joint {spec.names[joint]!r} is not finite")
  ls, rh = torso_joints(spec)
  torso = np.linalg.norm(gt[:, ls] - gt[:, rh], axis=-1)
  has_torso = ann[:, ls] & ann[:, rh] & (torso > 0)
  if not has_torso.any():
    raise ValueError("PCK: no person has both a left shoulder and a right hip annotated (no torso to scale by)")
  scored = ann & has_torso[:, None]
  # Non-finite predictions of unannotated joints are never scored: keep them out of the comparison.
  dist = np.linalg.norm(np.where(scored[..., None], preds - gt, 0.0), axis=-1)
  dist = dist / np.where(has_torso, torso, 1.0)[:, None]
  thresholds = np.atleast_1d(threshold)
  correct = (dist <= thresholds.reshape(-1, 1, 1)) & scored
  return (correct if np.ndim(threshold) else correct[0]), scored


def pck(
  predictions: np.ndarray,
  ground_truth: np.ndarray,
  annotated: np.ndarray,
  spec: KeypointSpec,
  thresholds: tuple[float, ...] = (0.2, 0.1),
) -> dict[str, float]:
  """PCK of predictions against the ground truth.

  Args:
    predictions: [N, K, 2] predicted (x, y), in the ground truth's pixel frame.
    ground_truth: [N, K, 2] annotated (x, y).
    annotated: [N, K] bool, True where the joint is annotated.
    spec: The keypoint spec (names decide the groups and the torso).
    thresholds: The first gives the groups and "PCK"; each one also gives "PCK@<t>".

  Returns:
    Percentages: every group, "PCK" (mean at thresholds[0]) and "PCK@<t>" per threshold; plus "people" (scored)
    and "skipped" (no torso).

  Raises:
    ValueError: shapes that do not match, non-finite predictions of annotated joints, or no person to score.
  """
  out: dict[str, float] = {}
  by_threshold, scored = correct_joints(predictions, ground_truth, annotated, spec, list(thresholds))
  for t_i, (t, correct) in enumerate(zip(thresholds, by_threshold)):
    if t_i == 0:
      for name, idx in groups(spec).items():
        out[name] = 100.0 * correct[:, idx].sum() / max(1, scored[:, idx].sum())
      out["PCK"] = 100.0 * correct.sum() / scored.sum()
    out[f"PCK@{t:g}"] = 100.0 * correct.sum() / scored.sum()
  people = float(scored.any(-1).sum())
  out["people"] = people
  out["skipped"] = float(len(scored) - people)
  return out


def set_ground_truth(set_dir: str | records.RecordSet) -> dict[int, np.ndarray]:
  """``{ann_id: keypoints [K, 3]}`` of every person in a TFRecord set (x, y, v in image pixels)."""
  paths, k, _ = pipeline.open_set(set_dir)
  out = {}
  for rec in tf.data.TFRecordDataset(paths):
    ex = records.parse(rec, k)
    for ann_id, kps in zip(ex["instance/id"].numpy(), ex["instance/keypoints"].numpy()):
      out[int(ann_id)] = kps
  return out


class PCKEvaluator:
  """PCK of a predict function on an evaluation set whose records hold the ground truth (``--sets eval``).

  Args:
    set_dir: The evaluation TFRecord set.
    dataset: ``pipeline.eval_dataset`` of that set.
    spec: Keypoint spec.
    flip_test: Average with the flipped input's heatmaps.
  """

  def __init__(
    self, set_dir: str | records.RecordSet, dataset: tf.data.Dataset, spec: KeypointSpec, flip_test: bool = False
  ):
    torso_joints(spec)  # Fails now, not after a whole prediction pass.
    self.dataset, self.spec, self.flip_test = dataset, spec, flip_test
    self.truth = set_ground_truth(set_dir)

  def predictions(self, predict_fn: Callable) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(predictions [N, K, 2], ground truth [N, K, 2], annotated [N, K]) in set order."""
    persons = predict_persons(predict_fn, self.dataset, self.spec, self.flip_test, with_ids=True)
    truth = np.stack([self.truth[p["ann_id"]] for p in persons])
    preds = np.stack([p["keypoints"][:, :2] for p in persons])
    return preds, truth[..., :2], truth[..., 2] > 0

  @property
  def names(self) -> tuple[str, ...]:
    """What a call returns: each joint group, ``PCK``, ``PCK@0.2`` and ``PCK@0.1``."""
    return (*groups(self.spec), "PCK", "PCK@0.2", "PCK@0.1")

  def __call__(self, predict_fn: Callable) -> dict[str, float]:
    result = pck(*self.predictions(predict_fn), self.spec)
    return {k: v for k, v in result.items() if k not in ("people", "skipped")}


def load_lsp_predictions(path: str, joints_file: str, num_test: int = 1000) -> dict[str, float]:
  """PCK of predictions made elsewhere, against LSP's / LSPET's ``joints.mat`` in its own pixel frame.

  Args:
    path: ``.npy``, ``.mat`` or ``.h5`` (variable ``preds`` or ``joints``): [14, 2 or 3, M] (the joints.mat layout),
      [M, 14, 2 or 3] or [2 or 3, 14, M]; M is every image of joints.mat or the last ``num_test`` (the test split).
    joints_file: The ground truth.
    num_test: Size of the test split (the last images).
  """
  arr = read_array(path, ("preds", "joints"))
  if arr.ndim == 3 and arr.shape[0] == 14 and arr.shape[1] in (2, 3):
    arr = arr.transpose(2, 0, 1)
  elif arr.ndim == 3 and arr.shape[1] == 14 and arr.shape[0] in (2, 3):
    arr = arr.transpose(2, 1, 0)
  elif not (arr.ndim == 3 and arr.shape[1] == 14 and arr.shape[2] in (2, 3)):
    raise ValueError(f"{path}: shape {list(arr.shape)} is not [14, 2|3, M], [M, 14, 2|3] or [2|3, 14, M]")
  xy, labeled, _ = lsp.load_joints(joints_file)
  xy = xy + 1.0  # load_joints gives 0-based; predictions made elsewhere share joints.mat's own frame.
  if len(arr) == num_test:
    xy, labeled = xy[-num_test:], labeled[-num_test:]
  elif len(arr) != len(xy):
    raise ValueError(
      f"{path} holds {len(arr)} people; {joints_file} has {len(xy)} (or pass predictions for the "
      f"last {num_test}, the test split)"
    )
  return pck(arr[..., :2], xy, labeled, LSP14)


def format_table(result: dict[str, float]) -> str:
  names = [g for g in GROUP_NAMES if g in result] + ["PCK", "PCK@0.1"]
  return (
    "| "
    + " | ".join(n if n != "PCK" else "PCK@0.2" for n in names)
    + " |\n|"
    + "---|" * len(names)
    + "\n| "
    + " | ".join(f"{result[n]:.2f}" for n in names)
    + " |"
  )
