#!/usr/bin/env python
"""Evaluates a checkpoint, or scores predictions made elsewhere, with the standard metrics.

COCO (OKS AP / AR with pycocotools):
  python scripts/evaluate.py coco --checkpoint work_dirs/coco_1k/checkpoints/best.keras --eval_dir data/coco_val/eval
  python scripts/evaluate.py coco --checkpoint ... --eval_dir data/coco_val_det/eval --flip_test   # detection boxes
  python scripts/evaluate.py coco --results my_results.json --annotations person_keypoints_val2017.json

MPII (PCKh@0.5 against gt_valid.mat; flip test on by default):
  python scripts/evaluate.py mpii --checkpoint work_dirs/mpii_aic/checkpoints/best.keras \\
      --eval_dir data/mpii_val/eval --gt data/mpii/gt_valid.mat
  python scripts/evaluate.py mpii --predictions preds.mat --gt gt_valid.mat --one_based

LSP / LSPET (PCK@0.2 and PCK@0.1 w.r.t. the torso, per joint group; flip test off unless --flip_test):
  python scripts/evaluate.py lsp --checkpoint work_dirs/lspet/checkpoints/best.keras --eval_dir data/lspet_200/eval
  python scripts/evaluate.py lsp --predictions preds.npy --joints lspet/joints.mat   # made elsewhere

Teacher monitor (held-back people of a labeled set: the network's pseudo-label PCK and Algorithm 1's mask counts by
annotated-joint difficulty and by whether the network gets the person right; see evaluation/teacher_probe.py):
  python scripts/evaluate.py probe --checkpoint work_dirs/ssl_lspet/plus/seed_0/checkpoints/last.keras \\
      --eval_dir data/lspet_bench/labeled_all/labeled --first_id 201 --num 500

Predictions files: COCO keypoint results json; LSP [14, 2 or 3, M] as joints.mat (or [M, 14, 2]), M = every image
or the last --num_test (the test split), in joints.mat's own pixel frame, as .npy, .mat or .h5 (preds or joints);
MPII [2958, 16, 2] in gt_valid order, or the same axes in any order that is unambiguous ([16, 2, 2958],
tompson.h5's [2, 16, 2958], ...), as .npy, .mat or .h5 (preds or pos_pred_src), 0-based unless --one_based
(MATLAB-era files).

Keypoint spec: a checkpoint trained here carries its own; the evaluation set's manifest names the one it was
converted with, and the two must agree. COCO AP uses that spec's OKS sigmas, so any layout works. A results json
of another layout than COCO-17 needs --spec (a spec defined in gin needs --gin_file too).
"""

from __future__ import annotations

import argparse
import sys

from semipose_tf.console import VERBOSE_FLAG, VERBOSE_HELP, quiet_start  # noqa: E402

quiet_start()


def _load_predict_fn(path: str):
  """A predict function (normalized crops -> heatmaps), the input size and the network's keypoint spec (or None),
  from a .keras checkpoint, a SavedModel folder (its ``heatmaps`` signature) or an exported ONNX / LiteRT / OpenVINO
  folder (run in its own runtime): every one is scored with the same crops and the same decoding."""
  from semipose_tf.predictor import HeatmapModel

  model = HeatmapModel(path)
  return model, model.geometry.input_size, model.spec


def _model_and_data(args, spec_name: str | None):
  """(predict function, evaluation dataset, spec) for --checkpoint and --eval_dir; the spec is ``spec_name``,
  else the network's, else the evaluation set's, and they must agree."""
  from semipose_tf.data import pipeline
  from semipose_tf.evaluation.callback import evaluation_spec

  predict, size, model_spec = _load_predict_fn(args.checkpoint)
  spec = evaluation_spec(args.eval_dir, spec_name, model_spec, "--spec")
  data = pipeline.eval_dataset(args.eval_dir, spec, args.batch_size, pipeline.PipelineConfig.of_size(size))
  return predict, data, spec


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument(VERBOSE_FLAG, action="store_true", help=VERBOSE_HELP)
  p.add_argument("dataset", choices=("coco", "mpii", "lsp", "probe"))
  p.add_argument(
    "--checkpoint",
    "--artifact",
    dest="checkpoint",
    help="a .keras pose network (from scripts/train.py), or an exported SavedModel / ONNX / LiteRT "
    "folder (scripts/export.py), run in its own runtime",
  )
  p.add_argument("--eval_dir", help="evaluation TFRecord set (make_tfrecords.py ... --sets eval)")
  p.add_argument("--annotations", help="COCO keypoint json (default: the one the eval set was converted from)")
  p.add_argument("--results", help="COCO: a keypoint results json to score (no model)")
  p.add_argument("--results_out", help="COCO: write the model's results json here")
  p.add_argument("--gt", help="MPII: gt_valid.mat")
  p.add_argument("--predictions", help="MPII: predictions to score (no model): .npy, .mat or .h5")
  p.add_argument("--one_based", action="store_true", help="MPII predictions are 1-based (MATLAB-era)")
  p.add_argument("--joints", help="LSP: joints.mat, for --predictions")
  p.add_argument("--num_test", type=int, default=1000, help="LSP: size of the test split (the last images)")
  p.add_argument("--flip_test", dest="flip_test", action="store_true", default=None)
  p.add_argument("--no_flip_test", dest="flip_test", action="store_false")
  p.add_argument("--first_id", type=int, default=0, help="probe: the first instance id of the held-back people")
  p.add_argument("--num", type=int, default=500, help="probe: how many people")
  p.add_argument("--batch_size", type=int, default=64)
  p.add_argument("--spec", help="keypoint spec (default: the checkpoint's; COCO-17 for --results)")
  p.add_argument("--gin_file", action="append", default=[], help="gin file(s) defining a custom --spec")
  args = p.parse_args(argv)
  import tensorflow as tf

  from semipose_tf import configurable
  from semipose_tf.data import records
  from semipose_tf.deploy import MissingExtra
  from semipose_tf.keypoints import UnknownSpecError

  try:
    configurable.parse_gin(args.gin_file)
    print(_DATASETS[args.dataset](args, p))
  except (FileNotFoundError, ValueError, UnknownSpecError, MissingExtra) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  except tf.errors.DataLossError:  # TFRecord's message names no file: name the corrupt shard of the set.
    error = records.corrupt_set_error([args.eval_dir])
    print(f"error: {error or 'a TFRecord set could not be read (corrupt record)'}", file=sys.stderr)
    return 2
  return 0


def _coco(args, p) -> str:
  """COCO OKS AP of a results file, or of a network on an evaluation set; the table."""
  from semipose_tf.evaluation import coco
  from semipose_tf.evaluation.callback import annotation_file_of
  from semipose_tf.keypoints import get_spec

  if args.results:
    if not args.annotations:
      p.error("--results needs --annotations")
    spec = get_spec(args.spec or "coco17")
    stats = coco.coco_eval(args.annotations, args.results, coco.require_sigmas(spec))
  else:
    if not (args.checkpoint and args.eval_dir):
      p.error("give --checkpoint and --eval_dir, or --results and --annotations")
    predict, data, spec = _model_and_data(args, args.spec)
    annotations = args.annotations or annotation_file_of(args.eval_dir)
    stats = coco.COCOEvaluator(annotations, data, spec, bool(args.flip_test), args.results_out)(predict)
  return (
    "| "
    + " | ".join(coco.STAT_NAMES)
    + " |\n|"
    + "---|" * len(coco.STAT_NAMES)
    + "\n"
    + "| "
    + " | ".join(f"{stats[n]:.4f}" for n in coco.STAT_NAMES)
    + " |"
  )


def _lsp(args, p) -> str:
  """LSP PCK of predictions made elsewhere, or of a network on an evaluation set; the table."""
  from semipose_tf.evaluation import pck

  if args.predictions:
    if not args.joints:
      p.error("lsp --predictions needs --joints joints.mat")
    return pck.format_table(pck.load_lsp_predictions(args.predictions, args.joints, args.num_test))
  if not (args.checkpoint and args.eval_dir):
    p.error("give --checkpoint and --eval_dir, or --predictions and --joints")
  predict, data, spec = _model_and_data(args, args.spec)
  return pck.format_table(pck.PCKEvaluator(args.eval_dir, data, spec, bool(args.flip_test))(predict))


def _probe(args, p) -> str:
  """The teacher monitor of a network on held-back people of a labeled set; the table."""
  from semipose_tf.evaluation.callback import evaluation_spec
  from semipose_tf.evaluation.teacher_probe import TeacherProbe
  from semipose_tf.method_config import MethodConfig
  from semipose_tf.train.task import METHOD_CONFIG_FILE, read_method_config

  if not (args.checkpoint and args.eval_dir):
    p.error("probe needs --checkpoint and --eval_dir (a labeled set holding the held-back people)")
  predict, size, model_spec = _load_predict_fn(args.checkpoint)
  spec = evaluation_spec(args.eval_dir, args.spec, model_spec, "--spec")
  # Algorithm 1's settings of the run the checkpoint comes from (its work dir's method_config.json).
  method = read_method_config(args.checkpoint)
  if method is None:
    print(
      f"note: no {METHOD_CONFIG_FILE} beside {args.checkpoint}: mask counts with the default settings", file=sys.stderr
    )
  masking = (method or MethodConfig()).masking
  result = TeacherProbe(args.eval_dir, spec, size, masking, args.first_id, args.num, args.batch_size)(predict)
  return "| measurement | value |\n|---|---|\n" + "\n".join(f"| {k} | {v:.4g} |" for k, v in result.items())


def _mpii(args, p) -> str:
  """MPII PCKh of predictions made elsewhere, or of a network on the validation set; the table."""
  from semipose_tf.evaluation import mpii

  if not args.gt:
    p.error("mpii needs --gt gt_valid.mat")
  if args.predictions:
    result = mpii.pckh(mpii.load_predictions(args.predictions), args.gt, one_based=args.one_based)
  else:
    if not (args.checkpoint and args.eval_dir):
      p.error("give --checkpoint and --eval_dir, or --predictions")
    predict, data, spec = _model_and_data(args, "mpii16")
    result = mpii.MPIIEvaluator(args.gt, data, spec, args.flip_test is not False)(predict)
  return mpii.format_table(result)


_DATASETS = {"coco": _coco, "lsp": _lsp, "probe": _probe, "mpii": _mpii}


if __name__ == "__main__":
  sys.exit(main())
