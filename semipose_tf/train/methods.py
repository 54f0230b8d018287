"""The training methods as presets: which branches of the step are on and where the teacher comes from."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Method:
  """One row of the paper's tables.

  Attributes:
    name: Preset name.
    unlabeled: Use the unlabeled stream at all.
    mask: Joint cutout count: "none" (affine only), "fixed" (``fixed_count`` joints) or "adaptive" (Algorithm 1).
    mixup: Add the mixup branch (L_m).
    teacher: "shared" (the student itself, stop-gradient), "frozen" (a separately trained supervised model) or
      "labels" (a diagnostic oracle: the unlabeled persons' own ground-truth heatmaps and joint weights, so that
      the strong branches can be judged apart from the quality of the teacher's predictions).
    dual: Two networks, each masked at and taught by the other's teacher predictions (Xie et al.'s dual).
  """

  name: str
  unlabeled: bool = True
  mask: str = "adaptive"
  mixup: bool = False
  teacher: str = "shared"
  dual: bool = False


METHODS = {
  m.name: m
  for m in (
    Method("supervised", unlabeled=False, mask="none"),
    Method("pseudopose", mask="none", teacher="frozen"),
    Method("affine", mask="none"),  # Table 3 "A".
    Method("affine_mixup", mask="none", mixup=True),  # Table 3 "A+Mixup".
    Method("single", mask="fixed"),  # Xie et al., 5 joints masked.
    Method("adaptive", mask="adaptive"),  # "Ours" = Table 3 "A+Adapt".
    Method("plus", mask="adaptive", mixup=True),  # "Ours(plus)" = Table 3 "A+Adapt+Mixup".
    Method("dual", mask="fixed", dual=True),  # Beyond the paper: Xie et al.'s two networks.
    # Diagnostics beyond the paper: the same branches against ground-truth targets (the unlabeled set must
    # hold keypoints). Whatever they lose against a supervised run with every label is the branches' own cost.
    # oracle_plus counts its masks from the ground-truth heatmaps: floor(8 x labeled joints / K), within [2, 8].
    Method("oracle_affine", mask="none", teacher="labels"),
    Method("oracle_single", mask="fixed", teacher="labels"),
    Method("oracle_plus", mask="adaptive", mixup=True, teacher="labels"),
  )
}


def get_method(name: str) -> Method:
  if name not in METHODS:
    raise ValueError(f"unknown method {name!r}; choose from {sorted(METHODS)}")
  return METHODS[name]
