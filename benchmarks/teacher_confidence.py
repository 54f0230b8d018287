#!/usr/bin/env python
"""Does the teacher know which of its joints are wrong? Its confidence against its correctness, on the probe.

The consistency losses train the student towards every pseudo-label; Algorithm 1 reads the teacher's confidence
only as a count per person. This asks whether the confidence could tell, joint by joint, the right pseudo-labels
(within 0.2 x torso of the held-back ground truth) from the wrong ones: the area under the ROC curve of the
heatmap peak (1.0 perfect, 0.5 chance), the fraction right per confidence quintile, and what keeping only the most
confident joints would keep (a per-joint filter the paper does not use). The network runs in inference mode on the
un-augmented crop, as the teacher monitor does (``semipose_tf.evaluation.teacher_probe``), on the same probe people.

  python benchmarks/teacher_confidence.py                           # the LSPET box regime's shared start
  python benchmarks/teacher_confidence.py --checkpoint start=A.keras --checkpoint plus=B.keras --out page.md
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
from results_io import provenance, write_page  # noqa: E402

from semipose_tf.console import VERBOSE_FLAG, VERBOSE_HELP, quiet_start  # noqa: E402

KEEP = (0.25, 0.5, 0.75, 1.0)  # Fractions of the scored joints kept, most confident first.


def confidence_table(scores: np.ndarray, correct: np.ndarray, quantiles: int = 5) -> dict:
  """What the confidence says about correctness, over the scored joints.

  Args:
    scores: [J] the teacher's heatmap peak of each scored joint.
    correct: [J] bool, the joint within 0.2 x torso of its ground truth.
    quantiles: how many equal-count confidence bins.

  Returns:
    ``joints``, ``right`` (fraction right), ``auc`` (probability that a right joint outscores a wrong one, ties
    half; NaN when either side is empty), ``bins`` (fraction right per bin, least confident first) and ``keep``
    (per fraction of KEEP: the fraction right among the kept joints and the share of all right joints kept).
  """
  from scipy import stats

  scores, correct = np.asarray(scores, np.float64), np.asarray(correct, bool)
  n_right, n_wrong = int(correct.sum()), int((~correct).sum())
  if n_right and n_wrong:
    ranks = stats.rankdata(scores)  # Mann-Whitney U from the ranks: ties count half.
    auc = (ranks[correct].sum() - n_right * (n_right + 1) / 2) / (n_right * n_wrong)
  else:
    auc = float("nan")
  order = np.argsort(-scores, kind="stable")
  keep = {}
  for f in KEEP:
    kept = correct[order[: max(1, round(f * len(scores)))]]
    keep[f] = (float(kept.mean()), float(kept.sum() / max(n_right, 1)))
  bins = [float(b.mean()) for b in np.array_split(correct[order[::-1]], quantiles) if len(b)]
  return {"joints": len(scores), "right": float(correct.mean()), "auc": float(auc), "bins": bins, "keep": keep}


def measure(checkpoint: str, set_dir: str, first_id: int, num: int) -> dict:
  """The confidence table of one network on the probe people of ``set_dir``."""
  import keras

  import semipose_tf.models  # noqa: F401  (registers the network classes for loading)
  from semipose_tf.data import records
  from semipose_tf.evaluation import pck
  from semipose_tf.evaluation.inference import predict_batches
  from semipose_tf.evaluation.teacher_probe import TeacherProbe
  from semipose_tf.method_config import Masking

  net = keras.models.load_model(checkpoint)
  people = records.open_record_set(set_dir)  # Read once: the probe's stream and ground truth take the handle.
  probe = TeacherProbe(people, people.spec, net.input_shape[1:3], Masking(), first_id=first_id, num=num)
  preds, scores, ids = [], [], []
  for batch, _, coords, peak in predict_batches(lambda x: net(x, training=False), probe.dataset):
    preds.append(coords)
    scores.append(peak)
    ids.extend(int(i) for i in batch["ann_id"].numpy())
  truth = np.stack([probe.truth[i] for i in ids])
  correct, scored = pck.correct_joints(np.concatenate(preds), truth[..., :2], truth[..., 2] > 0, people.spec)
  return confidence_table(np.concatenate(scores)[scored], correct[scored])


def page(results: dict[str, dict], args, checkpoints: dict[str, str]) -> str:
  """The markdown page: one column per network."""
  names = list(results)
  head = "| | " + " | ".join(f"`{n}`" for n in names) + " |"
  rule = "|---" * (len(names) + 1) + "|"
  rows = [
    ("scored joints", lambda r: f"{r['joints']}"),
    ("right (PCK@0.2 of the pseudo-labels)", lambda r: f"{100 * r['right']:.1f}%"),
    ("AUC: confidence separates right from wrong", lambda r: f"{r['auc']:.3f}"),
  ]
  rows += [
    (f"right in confidence quintile {q + 1} (least confident first)", lambda r, q=q: f"{100 * r['bins'][q]:.1f}%")
    for q in range(len(next(iter(results.values()))["bins"]))
  ]
  rows += [
    (
      f"keep the {100 * f:.0f}% most confident: right among kept / right joints kept",
      lambda r, f=f: f"{100 * r['keep'][f][0]:.1f}% / {100 * r['keep'][f][1]:.1f}%",
    )
    for f in KEEP
  ]
  where = provenance(ROOT)
  return "\n".join(
    [
      "# The teacher's confidence against its correctness",
      "",
      f"Measured by `python benchmarks/teacher_confidence.py` (commit {where['commit'][:7]}, {where['cpu']}) on "
      f"the probe people of `{os.path.relpath(args.set_dir, ROOT)}` (instance ids from {args.first_id}, "
      f"{args.num} people, their labels held back from training). Per scored joint: the heatmap peak of the "
      "network in inference mode on the un-augmented crop, and whether its argmax is within 0.2 x torso of the "
      "ground truth. AUC: the probability that a right joint has a higher peak than a wrong one. Networks: "
      + "; ".join(f"`{n}` {os.path.relpath(c, ROOT)}" for n, c in checkpoints.items())
      + ".",
      "",
      head,
      rule,
      *(f"| {title} | " + " | ".join(cell(results[n]) for n in names) + " |" for title, cell in rows),
      "",
    ]
  )


def main() -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument(
    "--checkpoint",
    action="append",
    help="a .keras network, or NAME=PATH to name its column (repeatable; default: the box regime's kept start, "
    "benchmarks/results/ssl_lspet_box/burn_in.keras)",
  )
  p.add_argument("--set_dir", default=os.path.join(ROOT, "data", "lspet_box", "labeled_all", "labeled"))
  p.add_argument("--first_id", type=int, default=1001, help="the probe's first instance id (the teacher monitor's)")
  p.add_argument("--num", type=int, default=500)
  p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "ssl_lspet_box_confidence.md"))
  p.add_argument(VERBOSE_FLAG, action="store_true", help=VERBOSE_HELP)
  args = p.parse_args()
  quiet_start()  # Here, not at import: a test imports confidence_table without touching the process's logging.
  given = args.checkpoint or ["start=" + os.path.join(ROOT, "benchmarks", "results", "ssl_lspet_box", "burn_in.keras")]
  checkpoints = dict(c.split("=", 1) if "=" in c else (os.path.relpath(c, ROOT), c) for c in given)
  for c in checkpoints.values():
    if not os.path.exists(c):
      p.error(f"--checkpoint {c}: no such file")
  if not os.path.exists(os.path.join(args.set_dir, "manifest.json")):
    p.error(f"--set_dir {args.set_dir}: no converted set there (benchmarks/ssl_lspet.py --regime box converts it)")
  results = {name: measure(c, args.set_dir, args.first_id, args.num) for name, c in checkpoints.items()}
  write_page(page(results, args, checkpoints), args.out)
  return 0


if __name__ == "__main__":
  sys.exit(main())
