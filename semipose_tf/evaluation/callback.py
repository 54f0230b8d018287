"""Evaluation during training: a Keras callback that runs an evaluator of the registry (``evaluation/registry.py``:
COCO AP, MPII PCKh, PCK, the teacher monitor) every N epochs and logs its metrics.

An evaluator is made for the network being trained (:class:`Evaluated`): its keypoint spec, its input size and
the training model's method configuration, so an experiment binds each of them once (``train.*``) and no
evaluation keeps a default of its own.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import keras
import tensorflow as tf

from semipose_tf import codec
from semipose_tf.data import records
from semipose_tf.evaluation import registry
from semipose_tf.evaluation.coco import STAT_NAMES
from semipose_tf.evaluation.mpii import MPIIEvaluator
from semipose_tf.evaluation.registry import annotation_file_of, evaluation_spec
from semipose_tf.keypoints import KeypointSpec
from semipose_tf.method_config import MethodConfig
from semipose_tf.models.factory import first_nonfinite


@dataclasses.dataclass(frozen=True)
class Evaluated:
  """What an evaluator is made for: the network under training, as its callback sees it.

  Attributes:
    spec: The keypoint spec the network carries (None if it carries none).
    input_size: (H, W) the network takes (None when it takes no fixed-size image).
    method_config: The training model's method configuration (the defaults for a bare network).
  """

  spec: KeypointSpec | None
  input_size: tuple[int, int] | None
  method_config: MethodConfig

  @classmethod
  def of(cls, model: keras.Model) -> "Evaluated":
    net = getattr(model, "net", model)
    shape = tuple(net.input_shape)
    size = codec.HeatmapCodec.of_network(net).input_size if len(shape) == 4 and None not in shape[1:3] else None
    return cls(getattr(net, "keypoint_spec", None), size, getattr(model, "method_config", None) or MethodConfig())


class EvaluationCallback(keras.callbacks.Callback):
  """Every ``every`` epochs (and after the last), evaluates the pose network and adds ``val_<metric>`` to the logs,
  so History, TensorBoard and best-checkpointing (``FitConfig.checkpoint_monitor = "val_AP"``) see them.

  Args:
    make_evaluator: ``make_evaluator(evaluated)`` returns the evaluator (a function from a predict function,
      normalized crops -> heatmaps, to {metric: value}) for the trained network (an :class:`Evaluated`). Called
      when training begins, so a missing evaluation set is reported after the training data checks.
    every: Evaluate every that many epochs.
    prefix: Prefix of the logged names.
    at_start: Also evaluate (and print) the network before its first step, the reference point that training
      should beat; a resumed run skips it. Stored in ``initial``.
    data_dirs: The TFRecord sets it reads.
  """

  def __init__(
    self,
    make_evaluator: Callable[[Evaluated], Callable[[Callable], dict[str, float]]],
    every: int = 1,
    prefix: str = "val_",
    at_start: bool = False,
    data_dirs: Sequence[str] = (),
  ):
    super().__init__()
    self.make_evaluator, self.every, self.prefix = make_evaluator, max(1, int(every)), prefix
    self.data_dirs = tuple(data_dirs)  # The sets it reads (named when one of them turns out corrupt).
    self.at_start = at_start
    self.evaluator = None
    self.last: dict[str, float] = {}
    self.initial: dict[str, float] = {}

  @property
  def names(self) -> tuple[str, ...] | None:
    """The names it logs (``prefix`` + the evaluator's ``names``), once training has begun; None when its
    evaluator does not say."""
    names = getattr(self.evaluator, "names", None)
    return None if names is None else tuple(self.prefix + n for n in names)

  @property
  def net(self) -> keras.Model:
    return getattr(self.model, "net", self.model)

  def _make(self):
    if self.evaluator is None:
      self.evaluator = self.make_evaluator(Evaluated.of(self.model))
    return self.evaluator

  def on_train_begin(self, logs=None):
    self._make()
    optimizer = getattr(self.model, "optimizer", None)
    if self.at_start and optimizer is not None and int(optimizer.iterations) == 0:
      self.initial = self._evaluate()
      print("Before training: " + " - ".join(f"{self.prefix}{k}: {v:.4f}" for k, v in self.initial.items()))

  def _evaluate(self) -> dict[str, float]:
    net = self.net
    predict = tf.function(lambda x: net(x, training=False), reduce_retracing=True)
    return self._make()(predict)

  def on_epoch_end(self, epoch, logs=None):
    last_epoch = self.params.get("epochs") if self.params else None
    if (epoch + 1) % self.every and epoch + 1 != last_epoch:
      return
    if first_nonfinite(self.net) is not None:
      print("\nevaluation skipped: the network's weights are not finite")  # Diverged; NaNGuard says where.
      return
    self.last = self._evaluate()
    if not (self.params or {}).get("verbose"):  # With fit's own epoch line the metrics are in it: said once.
      print("\n" + " - ".join(f"{self.prefix}{k}: {v:.4f}" for k, v in self.last.items()))
    if logs is not None:
      logs.update({f"{self.prefix}{k}": float(v) for k, v in self.last.items()})


def evaluation_callback(
  kind: str,
  eval_dir: str,
  data_root: str | None = None,
  spec: str | KeypointSpec | None = None,
  batch_size: int = 64,
  flip_test: bool | None = None,
  every: int = 1,
  at_start: bool = False,
  binding: str | None = None,
  **options,
) -> EvaluationCallback:
  """The evaluator ``kind`` of the registry (``evaluation/registry.py``: coco, pck, mpii, probe, or one you
  registered) every ``every`` epochs on ``eval_dir`` (under ``data_root`` when relative), made for the trained
  network: its input size, its keypoint spec (``spec`` must agree with it) and its method's settings.
  ``options``: the kind's own (``annotation_file``, ``results_file``, ``gt_file``, ``first_id``, ``num``); a
  path among them is under ``data_root`` too."""
  entry = registry.get_evaluator(kind)
  eval_dir = records.under_root(data_root, eval_dir)
  options = {k: records.under_root(data_root, v) if k.endswith("_file") and isinstance(v, str) else v
             for k, v in options.items()}  # fmt: skip
  binding = binding or f"{kind}_eval_callback.spec"

  def make(evaluated: Evaluated):
    if evaluated.input_size is None:
      raise ValueError(f"{eval_dir}: the network takes no fixed-size image, so there is no crop size to evaluate at")
    data = records.RecordSet(eval_dir)  # Its manifest and spec read once, for the spec check and the evaluator.
    the_spec = registry.evaluation_spec(data, entry.spec or spec, evaluated.spec, binding)
    request = registry.Request(data, the_spec, evaluated.input_size, batch_size, flip_test,
                               evaluated.method_config, options)  # fmt: skip
    return entry.make(request)

  return EvaluationCallback(make, every, prefix=entry.prefix, at_start=at_start, data_dirs=[eval_dir])


def coco_eval_callback(
  eval_dir: str,
  annotation_file: str | None = None,
  data_root: str | None = None,
  spec: str | KeypointSpec | None = None,
  batch_size: int = 64,
  flip_test: bool = False,
  every: int = 1,
  results_file: str | None = None,
  at_start: bool = False,
) -> EvaluationCallback:
  """COCO OKS AP / AR every ``every`` epochs on an evaluation set (ground-truth or detection boxes), at the trained
  network's input size.

  ``annotation_file`` defaults to the json the evaluation set was converted from (its manifest records it).
  ``spec`` defaults to the trained network's (``DataConfig.spec``); OKS uses that spec's sigmas.
  """
  return evaluation_callback(
    "coco", eval_dir, data_root, spec, batch_size, flip_test, every, at_start, annotation_file=annotation_file,
    results_file=results_file,
  )  # fmt: skip


def pck_eval_callback(
  eval_dir: str,
  data_root: str | None = None,
  spec: str | KeypointSpec | None = None,
  batch_size: int = 64,
  flip_test: bool = False,
  every: int = 1,
  at_start: bool = False,
) -> EvaluationCallback:
  """PCK (torso) every ``every`` epochs: logged as ``val_PCK`` (PCK@0.2, for best-checkpoint selection),
  ``val_PCK@0.1`` and per joint group (``val_Head`` ... ``val_Ankle``). The set's records hold the ground truth.
  ``spec`` defaults to the trained network's."""
  return evaluation_callback("pck", eval_dir, data_root, spec, batch_size, flip_test, every, at_start)


def mpii_eval_callback(
  eval_dir: str,
  gt_file: str,
  data_root: str | None = None,
  batch_size: int = 64,
  flip_test: bool = True,
  every: int = 1,
) -> EvaluationCallback:
  """MPII PCKh every ``every`` epochs (logged as ``val_Mean``, ``val_Head``, ...)."""
  return evaluation_callback(
    "mpii", eval_dir, data_root, None, batch_size, flip_test, every, binding="DataConfig.spec", gt_file=gt_file
  )


__all__ = [
  "EvaluationCallback",
  "Evaluated",
  "MPIIEvaluator",
  "STAT_NAMES",
  "annotation_file_of",
  "coco_eval_callback",
  "evaluation_callback",
  "evaluation_spec",
  "mpii_eval_callback",
  "pck_eval_callback",
]
