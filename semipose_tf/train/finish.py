"""What a finished run leaves besides its checkpoints: the final network, the untrained network's metrics, the
operative config, the SavedModel and the picture of predictions (see the work-directory layout in
:mod:`semipose_tf.train.experiment`). Written by the chief only, each file atomically."""

from __future__ import annotations

import csv
import json
import os
from typing import Callable, Sequence

import keras
import tensorflow as tf

from semipose_tf import atomic
from semipose_tf import export as export_lib
from semipose_tf.evaluation import pictures
from semipose_tf.keypoints import KeypointSpec
from semipose_tf.train.callbacks import save_model_atomic


def write_outputs(
  net: keras.Model,
  spec: KeypointSpec,
  work_dir: str,
  evaluations: Sequence[keras.callbacks.Callback],
  operative_config: Callable[[], str] | None,
  export: bool,
  picture_set: str | None,
  picture_count: int,
) -> None:
  """Writes the run's final outputs into ``work_dir``.

  Args:
    net: The trained pose network.
    spec: Its keypoint spec (skeleton and colours of the picture).
    work_dir: The run's work directory.
    evaluations: The run's extra callbacks; those that evaluated the untrained network (``initial``) have it
      written to ``before_training.json``.
    operative_config: Returns gin's operative config text (None: not written).
    export: Export the SavedModel to ``<work_dir>/saved_model/1``.
    picture_set: Draw the predictions on the first images of this TFRecord set into ``predictions.png``.
    picture_count: Images in that picture.
  """
  initial = {f"{c.prefix}{k}": v for c in evaluations for k, v in getattr(c, "initial", {}).items()}
  if initial:  # Evaluated before the first step (EvaluationCallback(at_start=True)); a resumed run keeps it.
    atomic.write_json(os.path.join(work_dir, "before_training.json"), initial)
  save_model_atomic(net, os.path.join(work_dir, "checkpoints", "final.keras"))
  if operative_config is not None:
    atomic.write_text(os.path.join(work_dir, "operative_config.gin"), operative_config())
  keypoints_fn = None
  if export:
    path = os.path.join(work_dir, "saved_model", "1")
    export_lib.export_saved_model(net, path)  # Built aside and swapped in whole.
    keypoints_fn, _ = export_lib.load_inference(path)
    print(f"SavedModel: {path}")
  if picture_set:
    # Through the SavedModel when there is one, so the picture shows what TF Serving would answer.
    keypoints_fn = keypoints_fn or export_lib.PoseInference(net).keypoints
    sheet = pictures.prediction_sheet(keypoints_fn, picture_set, spec, picture_count)
    out = os.path.join(work_dir, "predictions.png")
    atomic.write_bytes(out, tf.io.encode_png(sheet).numpy())
    print(f"Predictions: {out}")


def run_summary(work_dir: str) -> str:
  """Where everything is, and the evaluation metrics of the last epoch (and the best), from history.csv."""
  lines = [
    f"Done. Work dir: {work_dir}",
    f"  checkpoints: {os.path.join(work_dir, 'checkpoints')} (final.keras, last.keras, best.keras)",
    f"  TensorBoard: tensorboard --logdir {os.path.join(work_dir, 'logs')}",
  ]
  saved = os.path.join(work_dir, "saved_model")
  if os.path.isdir(saved):
    lines.append(
      f"  SavedModel:  {os.path.join(saved, '1')} "
      f"(TF Serving: tensorflow_model_server --model_base_path={os.path.abspath(saved)})"
    )
  picture = os.path.join(work_dir, "predictions.png")
  if os.path.exists(picture):
    lines.append(f"  predictions: {picture}")

  def history(folder):
    path = os.path.join(folder, "history.csv")
    if not os.path.exists(path):
      return []
    with open(path) as f:
      return list(csv.DictReader(f))

  rows, warm = history(work_dir), history(os.path.join(work_dir, "warmup"))
  before = {}
  if os.path.exists(os.path.join(work_dir, "before_training.json")):
    with open(os.path.join(work_dir, "before_training.json")) as f:
      before = json.load(f)
  if warm:
    lines.append(
      f"  warm-up:     {len(warm)} supervised epochs first ({os.path.join(work_dir, 'warmup')}), "
      f"then {len(rows)} epochs of the method"
    )
  keys = ("val_AP", "val_PCK@0.2", "val_Mean") if any("val_AP" in r for r in rows) else ("val_PCK", "val_Mean")
  for key in keys:
    values = [float(r[key]) for r in rows if r.get(key) not in (None, "")]
    if values:
      f = ".1f" if "PCK" in key or "Mean" in key else ".4f"  # Percentages, or AP as a fraction.
      start = f"{before[key]:{f}} before training, " if key in before else ""
      after_warm = [float(r[key]) for r in warm if r.get(key) not in (None, "")]
      middle = f"{after_warm[-1]:{f}} after the warm-up, " if after_warm else ""
      lines.append(
        f"  {key}: {start}{middle}{values[-1]:{f}} after the last epoch (best {max(values):{f}}; "
        f"epoch by epoch: {' '.join(f'{v:{f}}' for v in values)})"
      )
  return "\n".join(lines)
