"""The LSPET box page's section on the anchors' schedule (issue 34), beside the burn-in design.

The table's rows start from a shared supervised network (the start's epochs on labels alone) and then train a
row's epochs with or without the unlabeled people. The anchors (the paper, Xie et al., MultiAugs) train from the
ImageNet weights on labeled and unlabeled people together from step 0. Two diagnostic rows, ``anchor_supervised``
and ``anchor_plus`` (seed 0), run that schedule for the start's epochs plus a row's; this section puts them epoch by
epoch beside the burn-in design: the start's curve, then the supervised and plus rows' epochs after it.
"""

from __future__ import annotations

from results_io import fmt, stats

ANCHORS = ("anchor_supervised", "anchor_plus")


def _at(recs: list[dict], epoch: int, key: str) -> float:
  """Mean over the records of ``key`` after ``epoch`` (0-based); NaN where no record reached that epoch."""
  values = [r["epochs"][epoch].get(key) for r in recs if len(r["epochs"]) > epoch]
  return stats([v for v in values if v is not None])[0]


def _gain(a: float, b: float) -> str:
  return "-" if a != a or b != b else f"{a - b:+.1f}"


def anchors_section(records: dict, start: dict) -> list[str]:
  """Markdown lines: per epoch, the burn-in design (start, then the rows) and the two anchors, with the teacher.

  Args:
    records: method name -> list of run records (each with ``epochs``, one dict of logged values per epoch).
    start: the shared start's record (its ``epochs`` are the start's epochs).

  Returns:
    The section's lines, or none when neither anchor has a record.
  """
  sup = [r for r in records.get("anchor_supervised", []) if r]
  plus = [r for r in records.get("anchor_plus", []) if r]
  if not (sup or plus):
    return []
  burn = start.get("epochs", []) if start else []
  rows = {m: [r for r in records.get(m, []) if r] for m in ("supervised", "plus")}
  n = max([len(r["epochs"]) for r in sup + plus] + [len(burn) + max([len(r["epochs"]) for r in rows["plus"]] or [0])])
  lines = [
    "",
    "## The anchors' schedule beside the burn-in design",
    "",
    "Left, the burn-in design: the shared start's epochs (labels alone, from ImageNet), then the supervised and plus "
    "rows' epochs after it (mean over their seeds). Right, the anchors' schedule (seed 0): supervised and plus from "
    "the ImageNet weights with the unlabeled people from step 0, as long as the start and a row together, with the "
    "start's rate drops at the same fractions of training. Test PCK@0.2, then the teacher's pseudo-label PCK@0.2 on "
    "the probe (the network in inference mode, which for supervised is the network itself) and, for plus, the mask "
    "count its step used. A '-' is an epoch not run (yet).",
    "",
    "| Epoch | start, then supervised row | start, then plus row | supervised anchor | plus anchor | "
    "plus - supervised anchor | teacher: supervised anchor | teacher: plus anchor | masks: plus anchor |",
    "|---|---|---|---|---|---|---|---|---|",
  ]
  for e in range(n):
    if e < len(burn):
      left = fmt(burn[e].get("val_PCK@0.2", float("nan")))
      design = (left, left)
    else:
      design = tuple(fmt(_at(rows[m], e - len(burn), "val_PCK@0.2")) for m in ("supervised", "plus"))
    s, p = _at(sup, e, "val_PCK@0.2"), _at(plus, e, "val_PCK@0.2")
    lines.append(
      f"| {e + 1} | {design[0]} | {design[1]} | {fmt(s)} | {fmt(p)} | {_gain(p, s)} | "
      f"{fmt(_at(sup, e, 'probe_PCK@0.2'))} | {fmt(_at(plus, e, 'probe_PCK@0.2'))} | "
      f"{fmt(_at(plus, e, 'mask_count'), 2)} |"
    )
  return lines
