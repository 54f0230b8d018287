"""The method's settings as one value: every constant of the training step, its default said once, here.

A :class:`MethodConfig` groups four small frozen parts, each the settings of one piece of the step
(``train/teacher_student.py``):

* :class:`Masking`: Algorithm 1's adaptive mask count (gamma, mask_max, mask_min, tau), the fixed count of
  "single" / "dual", and the joint-cutout rectangles;
* :class:`StrongView`: the strong affine of the student's view;
* :class:`Mixup`: the mixup lambda and where to mix;
* :class:`LossWeights`: lambda_u and lambda_m;

plus the method preset's name (``train/methods.py``) and the teacher's batch-norm mode. Each part validates
itself when made (a one-line error names the parameter); :meth:`MethodConfig.check_network` checks what depends
on the network (joint count, split points). ``get_config`` / ``from_config`` round-trip through plain JSON, and a
run writes its configuration to ``<work_dir>/method_config.json``. The step, the teacher probe, the TensorBoard
pictures and ``scripts/method_figure.py`` all read the trained model's configuration, never defaults of their own.

Gin binds the parts by their class names (``Masking.mask_max = 12``, ``Mixup.locations = ("image",)``; see
``gin_configs/base/train.gin``); the method name is ``MethodConfig.method``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

from semipose_tf.codec.geometry import DEFAULT_INPUT_SIZE

TEACHER_BN_MODES = ("train", "inference")


def _fail(owner: str, name: str, want: str, value) -> None:
  raise ValueError(f"{owner}.{name} must be {want}, got {value!r}")


def check_number(
  owner: str, name: str, value, low: float, high: float = float("inf"), integer: bool = False, open_low: bool = False
) -> None:
  """One-line ``ValueError`` "<owner>.<name> must be a (whole) number >= low [and <= high], got v" unless it is."""
  ok = (
    isinstance(value, (int, float))
    and not isinstance(value, bool)
    and (value > low if open_low else value >= low)
    and value <= high
  )
  if ok and integer:
    ok = float(value) == int(value)
  if not ok:
    bounds = f"{'>' if open_low else '>='} {low:g}" + (f" and <= {high:g}" if high != float("inf") else "")
    _fail(owner, name, ("a whole number " if integer else "a number ") + bounds, value)


@dataclasses.dataclass(frozen=True)
class Masking:
  """Which joints the strong view hides, and how many (paper Algorithm 1; Xie et al.'s joint cutout).

  Attributes:
    gamma: Relative-response threshold: joint j counts as confident when (Hmax - R_j) / (Hmax - Hmin) < gamma.
    mask_max: Most masks (Algorithm 1's m).
    mask_min: Fewest masks.
    tau: Below this best response a sample counts as extremely hard and gets ``mask_min``.
    fixed_count: Joints masked by the fixed-count methods ("single", "dual"; Xie et al.: 5).
    jitter: Std of the rectangle centre jitter, px at :data:`CUTOUT_REFERENCE_SIZE` (scaled with the input).
    half_size: Range (inclusive) of the rectangles' half sides, px at :data:`CUTOUT_REFERENCE_SIZE`.
  """

  gamma: float = 0.55
  mask_max: int = 8
  mask_min: int = 2
  tau: float = 0.05
  fixed_count: int = 5
  jitter: float = 10.0
  half_size: tuple[int, int] = (10, 19)

  def __post_init__(self):
    object.__setattr__(self, "half_size", tuple(self.half_size))
    check_number("Masking", "gamma", self.gamma, 0.0, 1.0, open_low=True)
    check_number("Masking", "mask_max", self.mask_max, 1, integer=True)
    check_number("Masking", "mask_min", self.mask_min, 1, self.mask_max, integer=True)
    check_number("Masking", "tau", self.tau, 0.0)
    # The mask-count histogram has bins 0 .. mask_max: a larger fixed count would fall outside it without a word.
    if not (isinstance(self.fixed_count, int) and 1 <= self.fixed_count <= self.mask_max):
      _fail(
        "Masking",
        "fixed_count",
        f"a whole number between 1 and mask_max ({self.mask_max}; raise Masking.mask_max for more masks)",
        self.fixed_count,
      )
    check_number("Masking", "jitter", self.jitter, 0.0)
    if (
      len(self.half_size) != 2
      or not all(isinstance(v, int) for v in self.half_size)
      or not 0 < self.half_size[0] <= self.half_size[1]
    ):
      _fail("Masking", "half_size", "two whole numbers 0 < low <= high", self.half_size)


# The image size at which the paper states the cutout rectangles (and the reference code draws them).
CUTOUT_REFERENCE_SIZE = DEFAULT_INPUT_SIZE


@dataclasses.dataclass(frozen=True)
class StrongView:
  """The strong affine of the student's view (after cutout), applied to the teacher's heatmaps too.

  Attributes:
    rotation_factor: Rotation std in degrees (clipped at twice it).
    rotation_prob: Probability of rotating at all.
    scale_factor: Scale std (the multiplier is clipped to 1 +- it).
  """

  rotation_factor: float = 30.0
  rotation_prob: float = 0.8
  scale_factor: float = 0.25

  def __post_init__(self):
    check_number("StrongView", "rotation_factor", self.rotation_factor, 0.0)
    check_number("StrongView", "rotation_prob", self.rotation_prob, 0.0, 1.0)
    check_number("StrongView", "scale_factor", self.scale_factor, 0.0, 0.99)  # 1 - sf must stay a zoom.


@dataclasses.dataclass(frozen=True)
class Mixup:
  """The mixup branch: lambda ~ Beta(alpha, alpha) (or fixed), mixed at a location drawn per step.

  Attributes:
    alpha: Beta parameter of lambda.
    lam: A fixed lambda in [0, 1] instead of drawing it (None: draw).
    locations: Where to mix, one drawn per step: "image" or split points of the network (e.g. "layer3").
  """

  alpha: float = 1.0
  lam: float | None = None
  locations: tuple[str, ...] = ("image", "layer3")

  def __post_init__(self):
    locations = (self.locations,) if isinstance(self.locations, str) else tuple(self.locations)
    object.__setattr__(self, "locations", locations)
    check_number("Mixup", "alpha", self.alpha, 0.0, open_low=True)
    if self.lam is not None:
      check_number("Mixup", "lam", self.lam, 0.0, 1.0)
    if not locations or not all(isinstance(v, str) and v for v in locations):
      _fail("Mixup", "locations", "a non-empty list of split-point names", self.locations)


@dataclasses.dataclass(frozen=True)
class LossWeights:
  """L = L_s + lambda_u L_u + lambda_m L_m."""

  lambda_u: float = 1.0
  lambda_m: float = 1.0

  def __post_init__(self):
    check_number("LossWeights", "lambda_u", self.lambda_u, 0.0)
    check_number("LossWeights", "lambda_m", self.lambda_m, 0.0)


_PARTS = {"masking": Masking, "strong": StrongView, "mixup": Mixup, "loss": LossWeights}


@dataclasses.dataclass(frozen=True)
class MethodConfig:
  """Everything the training step needs to know about the method, as one value.

  Attributes:
    method: The preset (``train/methods.py``): supervised, pseudopose, affine, affine_mixup, single, adaptive,
      plus, dual, oracle_affine, oracle_single, oracle_plus. Gin sets it through ``MethodConfig.method``.
    masking, strong, mixup, loss: The parts above.
    teacher_bn_mode: "train" (the reference: batch statistics, moving averages updated) or "inference".
  """

  method: str = "plus"
  masking: Masking = dataclasses.field(default_factory=Masking)
  strong: StrongView = dataclasses.field(default_factory=StrongView)
  mixup: Mixup = dataclasses.field(default_factory=Mixup)
  loss: LossWeights = dataclasses.field(default_factory=LossWeights)
  teacher_bn_mode: str = "train"

  def __post_init__(self):
    if not isinstance(self.method, str) or not self.method:
      _fail("MethodConfig", "method", "a preset name (MethodConfig.method)", self.method)
    for name, cls in _PARTS.items():
      if not isinstance(getattr(self, name), cls):
        _fail("MethodConfig", name, f"a {cls.__name__}", getattr(self, name))
    if self.teacher_bn_mode not in TEACHER_BN_MODES:
      _fail("MethodConfig", "teacher_bn_mode", f"one of {TEACHER_BN_MODES}", self.teacher_bn_mode)

  def check_network(
    self, num_keypoints: int, split_points: Sequence[str], network: str = "the network", uses_mixup: bool = True
  ) -> None:
    """What depends on the network: the fixed count fits its joints, the mix locations are its split points."""
    if self.masking.fixed_count > num_keypoints:
      _fail("Masking", "fixed_count", f"at most the {num_keypoints} joints of {network}", self.masking.fixed_count)
    if uses_mixup:
      for loc in self.mixup.locations:
        if loc not in split_points:
          raise ValueError(f"Mixup.locations: {loc!r} is not a split point of {network}; valid: {list(split_points)}")

  def get_config(self) -> dict[str, Any]:
    """Plain JSON: ``{"method": ..., "masking": {...}, "strong": {...}, "mixup": {...}, "loss": {...}, ...}``."""

    def plain(v):
      return list(v) if isinstance(v, tuple) else v

    out = {"method": self.method, "teacher_bn_mode": self.teacher_bn_mode}
    for name in _PARTS:
      out[name] = {k: plain(v) for k, v in dataclasses.asdict(getattr(self, name)).items()}
    return out

  @classmethod
  def from_config(cls, config: dict[str, Any]) -> "MethodConfig":
    unknown = sorted(set(config) - {"method", "teacher_bn_mode", *_PARTS})
    if unknown:
      raise ValueError(
        f"MethodConfig has no setting {unknown[0]!r}; it has method, teacher_bn_mode, {', '.join(_PARTS)}"
      )
    parts = {}
    for name, part in _PARTS.items():
      values = dict(config.get(name, {}))
      fields = {f.name for f in dataclasses.fields(part)}
      bad = sorted(set(values) - fields)
      if bad:
        raise ValueError(f"{part.__name__} has no setting {bad[0]!r}; it has {', '.join(sorted(fields))}")
      parts[name] = part(**values)
    return cls(method=config.get("method", "plus"), teacher_bn_mode=config.get("teacher_bn_mode", "train"), **parts)


__all__ = ["CUTOUT_REFERENCE_SIZE", "LossWeights", "Masking", "MethodConfig", "Mixup", "StrongView"]
