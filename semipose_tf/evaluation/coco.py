"""COCO keypoint evaluation: model heatmaps -> image keypoints -> rescoring -> OKS-NMS -> results json -> COCOeval.

The protocol of the reference (HRNet / Xie et al.): ground-truth person boxes by default (a detection-box set as an
option: convert the detections with ``make_tfrecords.py detections --sets eval``), flip test optional, each
person's score = box score x mean of its keypoint scores above 0.2, OKS-NMS at 0.9 per image, then pycocotools
``COCOeval(iouType="keypoints")``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

from semipose_tf import atomic
from semipose_tf.evaluation import pck
from semipose_tf.evaluation.inference import predict_persons
from semipose_tf.keypoints import KeypointSpec

STAT_NAMES = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")


def oks_iou(kpts: np.ndarray, others: np.ndarray, area: float, areas: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
  """OKS between one person's keypoints [K, 3] and others [M, K, 3], with crop areas (the reference's oks_iou)."""
  var = (2 * sigmas) ** 2
  d2 = np.sum((others[..., :2] - kpts[None, :, :2]) ** 2, axis=-1)
  e = d2 / var / ((area + areas[:, None]) / 2 + np.spacing(1)) / 2
  return np.mean(np.exp(-e), axis=-1)


def oks_nms(persons: list[dict], threshold: float, sigmas: np.ndarray) -> list[int]:
  """Indices of the persons kept by greedy OKS-NMS (highest score first)."""
  if not persons:
    return []
  scores = np.array([p["score"] for p in persons])
  kpts = np.stack([p["keypoints"] for p in persons])
  areas = np.array([p["area"] for p in persons])
  order = np.argsort(-scores, kind="stable")
  keep = []
  while order.size:
    i = order[0]
    keep.append(int(i))
    rest = order[1:]
    order = rest[oks_iou(kpts[i], kpts[rest], areas[i], areas[rest], sigmas) <= threshold]
  return keep


def rescore_and_nms(
  persons: list[dict], sigmas: Sequence[float], keypoint_threshold: float = 0.2, oks_threshold: float = 0.9
) -> list[dict]:
  """COCO results (``image_id``, ``category_id``, ``keypoints`` flat [3K], ``score``) after rescoring and
  per-image OKS-NMS."""
  sigmas = np.asarray(sigmas, np.float64)
  by_image: dict[int, list[dict]] = {}
  for p in persons:
    s = p["keypoints"][:, 2]
    confident = s > keypoint_threshold
    kpt_score = float(s[confident].mean()) if confident.any() else 0.0
    by_image.setdefault(p["image_id"], []).append({**p, "score": kpt_score * p["box_score"]})
  results = []
  for image_id, people in by_image.items():
    for i in oks_nms(people, oks_threshold, sigmas):
      p = people[i]
      results.append(
        {
          "image_id": image_id,
          "category_id": 1,
          "keypoints": [float(v) for v in np.asarray(p["keypoints"], np.float64).ravel()],
          "score": float(p["score"]),
        }
      )
  return results


def require_sigmas(spec: KeypointSpec) -> tuple[float, ...]:
  if spec.sigmas is None:
    raise ValueError(
      f"keypoint spec {spec.name!r} has no OKS sigmas, and COCO-style AP (OKS) needs one per "
      f"keypoint: set {spec.name}/custom_spec.sigmas = [...] ({spec.num_keypoints} values; COCO's "
      "are 0.025 (eyes) to 0.107 (hips): a joint's sigma is how far annotators scatter it, relative "
      "to the person's size), or evaluate with PCK"
    )
  return spec.sigmas


def check_results(results: list, gt, num_keypoints: int, where: str) -> None:
  """Validates a COCO keypoint results list before pycocotools sees it.

  Raises:
    ValueError: an entry without the fields, with another number of keypoint values than ``3 * num_keypoints``,
      with a non-finite value or score, or whose image_id is not in the annotations; the message names the entry
      (index and image_id) and ``where``. An empty list is an error too: it would score a table of zeros.
  """
  if not isinstance(results, list) or not results:
    raise ValueError(f"{where}: no predictions to evaluate (an empty result set scores 0 everywhere)")
  image_ids, categories = set(gt.getImgIds()), set(gt.getCatIds())

  def number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)

  for i, r in enumerate(results):
    if not isinstance(r, dict) or not {"image_id", "category_id", "keypoints", "score"} <= set(r):
      raise ValueError(f"{where}: entry {i} needs image_id, category_id, keypoints and score; got {r!r:.100}")
    image_id, kps = r["image_id"], r["keypoints"]
    tag = f"{where}: entry {i} (image_id {image_id})"
    if image_id not in image_ids:
      raise ValueError(f"{tag}: image_id is not in the annotation file")
    if categories and r["category_id"] not in categories:
      raise ValueError(
        f"{tag}: category_id {r['category_id']!r} is not a category of the annotation file "
        f"({', '.join(map(str, sorted(categories)))}): it would score 0 without a word"
      )
    if not (isinstance(kps, list) and all(number(v) for v in kps) and number(r["score"])):
      raise ValueError(f"{tag}: keypoints must be a flat list of numbers and score a number ({r!r:.100})")
    values, score = np.asarray(kps, np.float64), float(r["score"])
    if values.size != 3 * num_keypoints:
      raise ValueError(
        f"{tag}: {values.size} keypoint values, expected {3 * num_keypoints} "
        f"({num_keypoints} keypoints x 3: x, y, score)"
      )
    if not (np.isfinite(values).all() and np.isfinite(score)):
      raise ValueError(f"{tag}: non-finite keypoint value or score")


def coco_eval(
  annotation_file: str, results: str | list[dict], sigmas: Sequence[float] | None = None, verbose: bool = False
) -> dict[str, float]:
  """pycocotools keypoint evaluation of a results list or json file against an annotation file.

  Args:
    annotation_file: COCO-format keypoint json (any number of keypoints K).
    results: Results list or the path of a results json.
    sigmas: K OKS sigmas (the spec's); None for COCO-17's, which pycocotools uses by default.
    verbose: Print pycocotools' own output.

  Raises:
    ValueError: bad results (see :func:`check_results`), or sigmas whose count differs from the annotations'.
  """
  from pycocotools.coco import COCO
  from pycocotools.cocoeval import COCOeval

  where = results if isinstance(results, str) else "results"
  quiet = contextlib.redirect_stdout(io.StringIO()) if not verbose else contextlib.nullcontext()
  with quiet:
    if not os.path.exists(annotation_file):
      raise FileNotFoundError(f"COCO annotation file not found: {annotation_file}")
    gt = COCO(annotation_file)
    if isinstance(results, str):
      if not os.path.exists(results):
        raise FileNotFoundError(f"results file not found: {results}")
      with open(results) as f:
        try:
          results = json.load(f)
        except ValueError as e:  # Not JSON (a truncated or wrong file): name it.
          raise ValueError(f"{where}: not a JSON file ({e})") from None
      if not isinstance(results, list):
        raise ValueError(
          f"{where}: a COCO results file is a JSON list of {{image_id, category_id, keypoints, "
          f"score}}; this one holds a {type(results).__name__}"
        )
    k = len(sigmas) if sigmas is not None else 17
    annotated = {len(a["keypoints"]) // 3 for a in gt.dataset.get("annotations", []) if "keypoints" in a}
    if annotated and annotated != {k}:
      counts = " or ".join(map(str, sorted(annotated)))
      raise ValueError(
        f"{annotation_file} has {counts} keypoints per person but {k} OKS sigmas were given: "
        "evaluate with the keypoint spec of that file (evaluate.py --spec NAME)"
      )
    check_results(results, gt, k, where)
    # Keypoint results only: a "bbox" on an entry sends pycocotools down its box path (a KeyError on the others).
    dt = gt.loadRes([{key: v for key, v in r.items() if key not in ("bbox", "segmentation")} for r in results])
    ev = COCOeval(gt, dt, iouType="keypoints")
    ev.params.useSegm = None
    if sigmas is not None:
      ev.params.kpt_oks_sigmas = np.asarray(sigmas, np.float64)
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
  if ev.stats[0] == -1:  # pycocotools' "undefined": no annotated person to score against.
    raise ValueError(
      f"{annotation_file}: no person with annotated keypoints to score against (pycocotools reports -1, "
      "undefined, for every statistic)"
    )
  return {name: float(v) for name, v in zip(STAT_NAMES, ev.stats)}


class COCOEvaluator:
  """Evaluates a predict function on a COCO evaluation set.

  Args:
    annotation_file: The COCO keypoint json of the evaluated split (val2017).
    dataset: ``pipeline.eval_dataset`` of the same split (ground-truth boxes, or detection boxes).
    spec: Keypoint spec (OKS sigmas, flip pairs).
    flip_test: Average with the flipped input's heatmaps.
    results_file: Where to write the COCO results json (None: not written).

  Besides COCO's ten numbers it reports ``PCK@0.2`` of the same predictions (torso PCK, the number people read at a
  glance, :mod:`semipose_tf.evaluation.pck`) when the set's boxes are the annotated people's own (ground-truth
  boxes) and the spec has a torso (left shoulder, right hip).
  """

  def __init__(
    self,
    annotation_file: str,
    dataset: tf.data.Dataset,
    spec: KeypointSpec,
    flip_test: bool = False,
    results_file: str | None = None,
  ):
    if not os.path.exists(annotation_file):
      raise FileNotFoundError(f"COCO annotation file not found: {annotation_file}")
    require_sigmas(spec)
    self.annotation_file, self.dataset, self.spec = annotation_file, dataset, spec
    self.flip_test, self.results_file = flip_test, results_file
    self._truth: dict[int, np.ndarray] | None = None  # The json's keypoints by annotation id, read once.

  @property
  def names(self) -> tuple[str, ...]:
    """What a call returns: the ten COCO statistics, and ``PCK@0.2`` when the set scores people by torso."""
    return (*STAT_NAMES, "PCK@0.2")

  def __call__(self, predict_fn: Callable) -> dict[str, float]:
    persons = predict_persons(predict_fn, self.dataset, self.spec, self.flip_test, with_ids=True)
    results = rescore_and_nms(persons, self.spec.sigmas)
    if self.results_file:
      os.makedirs(os.path.dirname(os.path.abspath(self.results_file)), exist_ok=True)
      atomic.write_json(self.results_file, results, indent=None)
    out = coco_eval(self.annotation_file, results, self.spec.sigmas)
    out.update(self._pck(persons))
    return out

  def _pck(self, persons: list[dict]) -> dict[str, float]:
    """PCK@0.2 of the predictions of annotated people ({} for detection boxes or a spec without a torso)."""
    try:
      pck.torso_joints(self.spec)
    except ValueError:
      return {}
    if self._truth is None:  # Every epoch evaluates the same file: read it at the first evaluation only.
      with open(self.annotation_file) as f:
        self._truth = {
          a["id"]: np.asarray(a["keypoints"], np.float64).reshape(-1, 3)
          for a in json.load(f).get("annotations", [])
          if "keypoints" in a
        }
    truth = self._truth
    matched = [p for p in persons if p["ann_id"] in truth]
    if not matched or len(matched) < len(persons):  # Detection boxes: no person is an annotation of its own.
      return {}
    gt = np.stack([truth[p["ann_id"]] for p in matched])
    result = pck.pck(np.stack([p["keypoints"][:, :2] for p in matched]), gt[..., :2], gt[..., 2] > 0, self.spec)
    return {"PCK@0.2": result["PCK@0.2"]} if result.get("people") else {}
