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


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument(VERBOSE_FLAG, action="store_true", help=VERBOSE_HELP)
  from semipose_tf.evaluation.registry import evaluators

  p.add_argument("dataset", choices=evaluators(), help="an evaluator of semipose_tf/evaluation/registry.py")
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
    print(_run(args, p))
  except (FileNotFoundError, ValueError, UnknownSpecError, MissingExtra) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  except tf.errors.DataLossError:  # TFRecord's message names no file: name the corrupt shard of the set.
    error = records.corrupt_set_error([args.eval_dir])
    print(f"error: {error or 'a TFRecord set could not be read (corrupt record)'}", file=sys.stderr)
    return 2
  return 0


def _network(args, p) -> str:
  """A network (a .keras file or an exported artifact, run in its own runtime) on an evaluation set, by the
  registry's evaluator of that name (semipose_tf/evaluation/registry.py); the table."""
  from semipose_tf.data import records
  from semipose_tf.evaluation import registry
  from semipose_tf.method_config import MethodConfig
  from semipose_tf.predictor import HeatmapModel
  from semipose_tf.train.task import read_method_config

  if not (args.checkpoint and args.eval_dir):
    p.error(f"{args.dataset} needs --checkpoint and --eval_dir" + _FILES.get(args.dataset, ("", None))[0])
  if args.dataset == "mpii" and not args.gt:
    p.error("mpii needs --gt gt_valid.mat")
  kind = registry.get_evaluator(args.dataset)
  model = HeatmapModel(args.checkpoint)  # Normalized crops -> heatmaps, whatever the format.
  data = records.RecordSet(args.eval_dir)  # Its manifest and spec read once, for the spec check and the evaluator.
  spec = registry.evaluation_spec(data, kind.spec or args.spec, model.spec, "--spec")
  method = read_method_config(args.checkpoint) if args.dataset == "probe" else None
  if args.dataset == "probe" and method is None:  # Algorithm 1's settings are the run's; a bare network has none.
    print(f"note: {args.checkpoint} carries no method configuration: mask counts with the default settings",
          file=sys.stderr)  # fmt: skip
  options = {"annotation_file": args.annotations, "results_file": args.results_out, "gt_file": args.gt,
             "first_id": args.first_id, "num": args.num}  # fmt: skip
  request = registry.Request(data, spec, model.geometry.input_size, args.batch_size, args.flip_test,
                             method or MethodConfig(), options)  # fmt: skip
  return kind.table(kind.make(request)(model))


def _coco_file(args, p) -> str:
  """COCO OKS AP of a results file made elsewhere."""
  from semipose_tf.evaluation import coco, registry
  from semipose_tf.keypoints import get_spec

  if not args.annotations:
    p.error("--results needs --annotations")
  spec = get_spec(args.spec or "coco17")
  return registry.get_evaluator("coco").table(coco.coco_eval(args.annotations, args.results, coco.require_sigmas(spec)))


def _lsp_file(args, p) -> str:
  """LSP PCK of predictions made elsewhere."""
  from semipose_tf.evaluation import pck

  if not args.joints:
    p.error("lsp --predictions needs --joints joints.mat")
  return pck.format_table(pck.load_lsp_predictions(args.predictions, args.joints, args.num_test))


def _mpii_file(args, p) -> str:
  """MPII PCKh of predictions made elsewhere."""
  from semipose_tf.evaluation import mpii

  if not args.gt:
    p.error("mpii needs --gt gt_valid.mat")
  return mpii.format_table(mpii.pckh(mpii.load_predictions(args.predictions), args.gt, one_based=args.one_based))


# Scoring a file made elsewhere, by dataset: (how to ask for it, the flag that holds it, the scorer).
_FILES = {
  "coco": (", or --results and --annotations", "results", _coco_file),
  "lsp": (", or --predictions and --joints", "predictions", _lsp_file),
  "mpii": (", or --predictions and --gt", "predictions", _mpii_file),
}


def _run(args, p) -> str:
  _, flag, score_file = _FILES.get(args.dataset, ("", None, None))
  if flag and getattr(args, flag):
    return score_file(args, p)
  return _network(args, p)


if __name__ == "__main__":
  sys.exit(main())
