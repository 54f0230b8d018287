"""Evaluators by name, behind one contract: the training callbacks and ``scripts/evaluate.py`` make them here.

The contract. An evaluator kind (:class:`EvaluatorKind`) makes an evaluator for a request (:class:`Request`: the
set, the network's keypoint spec and input size, the batch size, flip test, and the kind's own options); an
evaluator is a callable ``evaluator(predict) -> {metric: float}``, where ``predict`` maps normalized crops float32
[N, H, W, 3] to heatmaps [N, H/4, W/4, K], with a ``names`` property listing the metrics it returns (the callbacks
log them as ``val_<name>``, the checkpoint monitor checks against them). ``table(result)`` is its Markdown table.

The kinds here: ``coco`` (OKS AP / AR, pycocotools), ``pck`` (PCK@0.2 / 0.1 of the torso, LSP's metric; ``lsp`` is
its other name), ``mpii`` (PCKh@0.5 against ``gt_valid.mat``) and ``probe`` (the teacher monitor). Add one with
:func:`register_evaluator`; ``evaluate.py NAME --checkpoint ... --eval_dir ...`` and
:func:`semipose_tf.evaluation.callback.evaluation_callback` then find it by name.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Protocol

import tensorflow as tf

from semipose_tf.data import pipeline, records
from semipose_tf.keypoints import KeypointSpec, check_same, get_spec
from semipose_tf.method_config import MethodConfig


class Evaluator(Protocol):
  """``evaluator(predict) -> {metric: value}``; ``names``: the metrics it returns."""

  names: tuple[str, ...]

  def __call__(self, predict: Callable[[tf.Tensor], tf.Tensor]) -> dict[str, float]: ...


@dataclasses.dataclass(frozen=True)
class Request:
  """What an evaluator is made for.

  Attributes:
    eval_dir: The evaluation TFRecord set (its folder, or the handle whose manifest was read already).
    spec: The keypoint spec to evaluate with (already agreed between the set, the network and the setting).
    input_size: (H, W) of the network's crops.
    batch_size: Prediction batch size.
    flip_test: Average with the flipped crop's heatmaps (None: the kind's default).
    method_config: The trained model's method configuration (the probe's Algorithm 1 settings).
    options: The kind's own settings (``annotation_file``, ``results_file``, ``gt_file``, ``first_id``, ``num``).
  """

  eval_dir: str | records.RecordSet
  spec: KeypointSpec
  input_size: tuple[int, int]
  batch_size: int = 64
  flip_test: bool | None = None
  method_config: MethodConfig = dataclasses.field(default_factory=MethodConfig)
  options: dict[str, Any] = dataclasses.field(default_factory=dict)

  def crops(self) -> tf.data.Dataset:
    """The set's un-augmented evaluation crops at the network's input size, batched."""
    return pipeline.eval_dataset(
      self.eval_dir, self.spec, self.batch_size, pipeline.PipelineConfig.of_size(self.input_size)
    )

  def flip(self, default: bool) -> bool:
    return default if self.flip_test is None else bool(self.flip_test)


@dataclasses.dataclass(frozen=True)
class EvaluatorKind:
  """A named kind of evaluation: ``make(request) -> Evaluator``, ``table(result) -> str``; ``prefix`` of its
  logged names in training; ``spec``: the one spec it scores (MPII's), or None for the network's."""

  make: Callable[[Request], Evaluator]
  table: Callable[[dict[str, float]], str]
  prefix: str = "val_"
  spec: str | None = None


_REGISTRY: dict[str, EvaluatorKind] = {}


def register_evaluator(name: str, kind: EvaluatorKind) -> None:
  """Adds an evaluator kind under ``name``; a name is taken once."""
  if name in _REGISTRY:
    raise ValueError(f"evaluator {name!r} is registered already")
  _REGISTRY[name] = kind


def get_evaluator(name: str) -> EvaluatorKind:
  if name not in _REGISTRY:
    raise ValueError(f"unknown evaluator {name!r}; choose from {evaluators()}")
  return _REGISTRY[name]


def evaluators() -> tuple[str, ...]:
  return tuple(_REGISTRY)


def evaluation_spec(
  eval_dir: str | records.RecordSet, spec: str | KeypointSpec | None, model_spec: KeypointSpec | None, binding: str
) -> KeypointSpec:
  """The spec to evaluate with: the configured one, else the network's, else the evaluation set's; every one
  that is known must agree with the others (an error names both sides and ``binding``)."""
  data_spec = pipeline.set_spec(eval_dir)
  chosen = get_spec(spec) if spec is not None else (model_spec or data_spec)
  if model_spec is not None:  # Both agreeing with the network means they agree with each other.
    check_same(data_spec, model_spec, eval_dir, "the network", "DataConfig.spec")
    check_same(chosen, model_spec, f"{binding} = {chosen.name!r}", "the network", binding)
  else:
    check_same(data_spec, chosen, eval_dir, f"{binding} = {chosen.name!r}", binding)
  return chosen


def annotation_file_of(eval_dir: str | records.RecordSet) -> str:
  """The COCO annotation file an evaluation set was converted from, as its manifest records it."""
  files = records.open_record_set(eval_dir).manifest.get("source", {}).get("files", [])
  if not files:
    raise ValueError(f"{eval_dir}: its manifest names no annotation file; pass annotation_file")
  return files[0]


# --- The kinds of this project. ----------------------------------------------------------------------------------


def _coco(r: Request) -> Evaluator:
  from semipose_tf.evaluation.coco import COCOEvaluator

  annotations = r.options.get("annotation_file") or annotation_file_of(r.eval_dir)
  return COCOEvaluator(annotations, r.crops(), r.spec, r.flip(False), r.options.get("results_file"))


def _coco_table(stats: dict[str, float]) -> str:
  from semipose_tf.evaluation.coco import STAT_NAMES

  return "\n".join(
    [
      "| " + " | ".join(STAT_NAMES) + " |",
      "|" + "---|" * len(STAT_NAMES),
      "| " + " | ".join(f"{stats[n]:.4f}" for n in STAT_NAMES) + " |",
    ]
  )


def _pck(r: Request) -> Evaluator:
  from semipose_tf.evaluation import pck

  return pck.PCKEvaluator(r.eval_dir, r.crops(), r.spec, r.flip(False))


def _pck_table(result: dict[str, float]) -> str:
  from semipose_tf.evaluation import pck

  return pck.format_table(result)


def _mpii(r: Request) -> Evaluator:
  from semipose_tf.evaluation.mpii import MPIIEvaluator

  gt = r.options.get("gt_file")
  if not gt or not os.path.exists(gt):
    raise FileNotFoundError(f"MPII ground truth not found: {gt} (the standard gt_valid.mat)")
  return MPIIEvaluator(gt, r.crops(), r.spec, r.flip(True))


def _mpii_table(result: dict[str, float]) -> str:
  from semipose_tf.evaluation import mpii

  return mpii.format_table(result)


def _probe(r: Request) -> Evaluator:
  from semipose_tf.evaluation.teacher_probe import TeacherProbe

  o = r.options
  return TeacherProbe(
    r.eval_dir, r.spec, r.input_size, r.method_config.masking, o.get("first_id", 0), o.get("num", 500), r.batch_size
  )


def _probe_table(result: dict[str, float]) -> str:
  return "| measurement | value |\n|---|---|\n" + "\n".join(f"| {k} | {v:.4g} |" for k, v in result.items())


register_evaluator("coco", EvaluatorKind(_coco, _coco_table))
register_evaluator("pck", EvaluatorKind(_pck, _pck_table))
register_evaluator("lsp", EvaluatorKind(_pck, _pck_table))
register_evaluator("mpii", EvaluatorKind(_mpii, _mpii_table, spec="mpii16"))
register_evaluator("probe", EvaluatorKind(_probe, _probe_table, prefix="probe_"))


__all__ = [
  "Evaluator",
  "EvaluatorKind",
  "Request",
  "annotation_file_of",
  "evaluation_spec",
  "evaluators",
  "get_evaluator",
  "register_evaluator",
]
