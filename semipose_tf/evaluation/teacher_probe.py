"""The teacher monitor: how good are the pseudo-labels, and whom does adaptive masking treat as easy?

On a fixed probe of unlabeled training people whose labels were held back (they are never trained on: the
unlabeled stream carries no labels), every epoch it measures

* the teacher's pseudo-label PCK@0.2 and PCK@0.1 (torso), i.e. how often the targets the student is taught with
  are right: consistency training can only help where they mostly are;
* the adaptive mask count of Algorithm 1 per person, split by an independent difficulty measure: how many of the
  person's joints the annotators could mark (all / most / few; LSPET leaves occluded and out-of-frame joints
  unmarked). Algorithm 1 should give the hard (few annotated) people fewer masks;
* and whether the count follows the teacher's own correctness: the mean count of the people it gets mostly right
  against the rest, and the rank correlation between count and the person's fraction of right joints (Algorithm
  1 takes a confident teacher for an easy person; this checks it on people whose answer is known).

The teacher shares the student's weights; the probe runs it in inference mode on the un-augmented crop (the
training step's teacher sees a weakly augmented view, with batch norm as ``MethodConfig.teacher_bn_mode`` says),
so the monitor measures the network's predictions, not one augmentation draw. The mask counts use the trained
model's own Algorithm 1 settings (its ``MethodConfig.masking``).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from semipose_tf.augment.cutout import adaptive_mask_count
from semipose_tf.data import pipeline, records
from semipose_tf.evaluation import pck
from semipose_tf.evaluation.callback import EvaluationCallback, evaluation_callback
from semipose_tf.evaluation.inference import predict_batches
from semipose_tf.keypoints import KeypointSpec
from semipose_tf.method_config import Masking

# Difficulty groups by the number of annotated joints, as a fraction of K: all, at least 70%, fewer.
DIFFICULTY = ("all_joints", "most_joints", "few_joints")


def difficulty(annotated: np.ndarray) -> np.ndarray:
  """[N] group index of each person from its annotated-joint mask [N, K]: 0 all joints, 1 >= 70%, 2 fewer."""
  n, k = annotated.sum(-1), annotated.shape[-1]
  return np.where(n == k, 0, np.where(n >= 0.7 * k, 1, 2))


class TeacherProbe:
  """Pseudo-label PCK and adaptive mask counts of a network on held-back people.

  Args:
    set_dir: A labeled TFRecord set that holds the probe people with their labels (e.g. the all-labels copy of
      the unlabeled images).
    spec: Keypoint spec.
    input_size: (H, W) network input.
    first_id: Probe people are those with instance id >= ``first_id`` (skip the labeled budget: on the LSPET
      split the labeled images are the first N ids).
    num: Probe size.
    batch_size: Prediction batch size.
    masking: Algorithm 1's settings: the trained model's (``MethodConfig.masking``).
  """

  def __init__(
    self,
    set_dir: str | records.RecordSet,
    spec: KeypointSpec,
    input_size: Sequence[int],
    masking: Masking,
    first_id: int = 0,
    num: int = 500,
    batch_size: int = 64,
  ):
    pck.torso_joints(spec)
    self.spec, self.masking = spec, masking
    config = pipeline.PipelineConfig.of_size(tuple(input_size))
    people = pipeline.eval_dataset(set_dir, spec, None, config).filter(lambda ex: ex["ann_id"] >= first_id)
    self.dataset = people.take(num).batch(batch_size).cache()
    self.truth = pck.set_ground_truth(set_dir)
    if not any(i >= first_id for i in self.truth):
      raise ValueError(f"{set_dir}: no person with instance id >= {first_id} for the teacher probe")

  @property
  def names(self) -> tuple[str, ...]:
    """What a call returns (each logged as ``probe_<name>``)."""
    sides = ("right", "wrong")
    return (
      "PCK@0.2", "PCK@0.1", "mask_count",
      *(f"{k}_{d}" for d in DIFFICULTY for k in ("mask_count", "people")),
      *(f"{k}_teacher_{s}" for s in sides for k in ("mask_count", "people")),
      "mask_count_rank_corr",
    )  # fmt: skip

  def __call__(self, predict_fn: Callable) -> dict[str, float]:
    preds, ids, counts = [], [], []
    for batch, heatmaps, coords, _ in predict_batches(predict_fn, self.dataset):
      counts.append(adaptive_mask_count(heatmaps, self.masking).numpy())
      preds.append(coords)
      ids.extend(int(i) for i in batch["ann_id"].numpy())
    preds, counts = np.concatenate(preds), np.concatenate(counts)
    truth = np.stack([self.truth[i] for i in ids])
    annotated = truth[..., 2] > 0
    result = pck.pck(preds, truth[..., :2], annotated, self.spec)
    out = {"PCK@0.2": result["PCK@0.2"], "PCK@0.1": result["PCK@0.1"], "mask_count": float(counts.mean())}
    group = difficulty(annotated)
    for g, name in enumerate(DIFFICULTY):
      # A group with no person logs NaN rather than a made-up 0; the results page prints it as "-".
      out[f"mask_count_{name}"] = float(counts[group == g].mean()) if (group == g).any() else float("nan")
      out[f"people_{name}"] = float((group == g).sum())
    out.update(count_vs_teacher(counts, *pck.correct_joints(preds, truth[..., :2], annotated, self.spec)))
    return out


def count_vs_teacher(counts: np.ndarray, correct: np.ndarray, scored: np.ndarray) -> dict[str, float]:
  """Does Algorithm 1 give more masks to the people its teacher gets right (its premise: confident = easy)?

  Args:
    counts: [N] adaptive mask count per person.
    correct, scored: [N, K] bool, from ``pck.correct_joints`` at 0.2 x torso.

  Returns:
    ``mask_count_teacher_right`` / ``_wrong``: mean count of the people whose teacher places at least half of
    their scored joints within 0.2 x torso / fewer (NaN for an empty side), with ``people_teacher_right`` /
    ``_wrong``; ``mask_count_rank_corr``: Spearman's rank correlation between the count and the person's fraction
    of right joints (NaN when either is constant: no ordering to correlate).
  """
  from scipy import stats

  people = scored.any(-1)  # People without a torso have no PCK to compare with.
  counts, right = counts[people], correct[people].sum(-1) / scored[people].sum(-1)
  out = {}
  for name, side in (("right", right >= 0.5), ("wrong", right < 0.5)):
    out[f"mask_count_teacher_{name}"] = float(counts[side].mean()) if side.any() else float("nan")
    out[f"people_teacher_{name}"] = float(side.sum())
  constant = len(counts) < 2 or np.ptp(counts) == 0 or np.ptp(right) == 0
  out["mask_count_rank_corr"] = float("nan") if constant else float(stats.spearmanr(counts, right)[0])
  return out


def teacher_probe_callback(
  set_dir: str, data_root: str | None = None, spec=None, first_id: int = 0, num: int = 500, every: int = 1
) -> EvaluationCallback:
  """The teacher monitor every ``every`` epochs, logged as ``probe_PCK@0.2``, ``probe_PCK@0.1``,
  ``probe_mask_count``, ``probe_mask_count_<all|most|few>_joints``, ``probe_mask_count_teacher_<right|wrong>``
  and ``probe_mask_count_rank_corr`` (History, TensorBoard, history.csv). Input size and Algorithm 1's settings
  are the trained network's and its method's (the registry's ``probe`` evaluator)."""
  return evaluation_callback(
    "probe", set_dir, data_root, spec, every=every, binding="teacher_probe_callback.spec", first_id=first_id, num=num
  )


__all__ = ["DIFFICULTY", "TeacherProbe", "count_vs_teacher", "difficulty", "teacher_probe_callback"]
