"""Keypoint specifications: names, left/right flip pairs, skeleton edges, OKS sigmas.

Built-in specs: ``coco17`` (COCO person keypoints), ``mpii16`` (MPII, in the order of the HRNet/SimpleBaseline
json and ``gt_valid.mat``), ``aic14`` (AI Challenger) and ``lsp14`` (Leeds Sports Pose / LSP Extended). A custom
spec is a :class:`KeypointSpec` built in Python and registered with :func:`register_spec`, or defined in gin with
``custom_spec`` (``semipose_tf.configurable`` registers a resolver, so :func:`get_spec` finds gin-defined specs by
name everywhere: ``DataConfig.spec``, the evaluation callbacks, every script).

Flip pairs are ``(left, right)``: the first index of a pair is the person's LEFT joint (their left, which is on the
right of the picture for a person facing the camera). A horizontal flip swaps the two channels of every pair; when
drawing, limbs touching a left joint are orange, a right joint blue, the rest green. Swapping the order inside a
pair changes nothing in training or evaluation, only those colours.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class KeypointSpec:
  """A keypoint layout.

  Attributes:
    name: Registry name, e.g. ``"coco17"``.
    names: One name per keypoint, in channel order (K entries).
    flip_pairs: ``(left, right)`` index pairs swapped by a horizontal flip (the person's left joint first; it
      decides only the drawing colours).
    skeleton: ``(a, b)`` index pairs (0-based) drawn as limbs.
    sigmas: Per-keypoint OKS sigmas (K floats) or None when the dataset defines none.
    colors: Per-limb RGB colours for drawing (len(skeleton) triples); a default palette when empty.
  """

  name: str
  names: tuple[str, ...]
  flip_pairs: tuple[tuple[int, int], ...] = ()
  skeleton: tuple[tuple[int, int], ...] = ()
  sigmas: tuple[float, ...] | None = None
  colors: tuple[tuple[int, int, int], ...] = ()

  def __post_init__(self):
    object.__setattr__(self, "names", tuple(str(n) for n in self.names))
    object.__setattr__(self, "flip_pairs", tuple((int(a), int(b)) for a, b in self.flip_pairs))
    object.__setattr__(self, "skeleton", tuple((int(a), int(b)) for a, b in self.skeleton))
    if self.sigmas is not None:
      object.__setattr__(self, "sigmas", tuple(float(s) for s in self.sigmas))
    object.__setattr__(self, "colors", tuple(tuple(int(c) for c in rgb) for rgb in self.colors))
    k = len(self.names)
    if k == 0:
      raise ValueError(f"KeypointSpec {self.name!r}: `names` is empty")
    if len(set(self.names)) != k:
      raise ValueError(f"KeypointSpec {self.name!r}: duplicate keypoint names in {self.names}")
    seen = set()
    for a, b in self.flip_pairs:
      if not (0 <= a < k and 0 <= b < k) or a == b:
        raise ValueError(f"KeypointSpec {self.name!r}: flip pair ({a}, {b}) is not two distinct indices < {k}")
      if a in seen or b in seen:
        raise ValueError(f"KeypointSpec {self.name!r}: keypoint in more than one flip pair: ({a}, {b})")
      seen.update((a, b))
    for a, b in self.skeleton:
      if not (0 <= a < k and 0 <= b < k):
        raise ValueError(f"KeypointSpec {self.name!r}: skeleton edge ({a}, {b}) out of range for K={k}")
    if self.sigmas is not None and len(self.sigmas) != k:
      raise ValueError(f"KeypointSpec {self.name!r}: {len(self.sigmas)} sigmas for {k} keypoints")
    if self.colors and len(self.colors) != len(self.skeleton):
      raise ValueError(f"KeypointSpec {self.name!r}: {len(self.colors)} colours for {len(self.skeleton)} limbs")

  @property
  def num_keypoints(self) -> int:
    return len(self.names)

  @property
  def flip_index(self) -> np.ndarray:
    """Permutation [K] such that ``flipped[..., k] = original[..., flip_index[k]]``."""
    perm = np.arange(self.num_keypoints)
    for a, b in self.flip_pairs:
      perm[a], perm[b] = b, a
    return perm

  def limb_colors(self) -> list[tuple[int, int, int]]:
    """Per-limb RGB colours: the spec's own, else left limbs orange, right limbs blue, centre limbs green."""
    if self.colors:
      return list(self.colors)
    left = {a for a, _ in self.flip_pairs}
    right = {b for _, b in self.flip_pairs}
    out = []
    for a, b in self.skeleton:
      if a in left or b in left:
        out.append((255, 128, 0))
      elif a in right or b in right:
        out.append((51, 153, 255))
      else:
        out.append((0, 200, 0))
    return out

  def to_json(self) -> dict:
    return dataclasses.asdict(self)

  @classmethod
  def from_json(cls, d: dict) -> "KeypointSpec":
    """The spec of :meth:`to_json`'s dict (as manifests and saved networks store it); unknown keys are ignored."""
    fields = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in d.items() if k in fields})


COCO17 = KeypointSpec(
  name="coco17",
  names=(
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
  ),
  flip_pairs=((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
  # The COCO json's skeleton (1-based there), in its order.
  skeleton=(
    (15, 13),
    (13, 11),
    (16, 14),
    (14, 12),
    (11, 12),
    (5, 11),
    (6, 12),
    (5, 6),
    (5, 7),
    (6, 8),
    (7, 9),
    (8, 10),
    (1, 2),
    (0, 1),
    (0, 2),
    (1, 3),
    (2, 4),
    (3, 5),
    (4, 6),
  ),
  sigmas=tuple(
    s / 10.0
    for s in (0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89)
  ),
)

MPII16 = KeypointSpec(
  name="mpii16",
  names=(
    "right_ankle",
    "right_knee",
    "right_hip",
    "left_hip",
    "left_knee",
    "left_ankle",
    "pelvis",
    "thorax",
    "upper_neck",
    "head_top",
    "right_wrist",
    "right_elbow",
    "right_shoulder",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
  ),
  flip_pairs=((5, 0), (4, 1), (3, 2), (15, 10), (14, 11), (13, 12)),
  skeleton=(
    (0, 1),
    (1, 2),
    (2, 6),
    (6, 3),
    (3, 4),
    (4, 5),
    (6, 7),
    (7, 8),
    (8, 9),
    (10, 11),
    (11, 12),
    (12, 7),
    (7, 13),
    (13, 14),
    (14, 15),
  ),
)

AIC14 = KeypointSpec(
  name="aic14",
  names=(
    "right_shoulder",
    "right_elbow",
    "right_wrist",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "right_hip",
    "right_knee",
    "right_ankle",
    "left_hip",
    "left_knee",
    "left_ankle",
    "head_top",
    "neck",
  ),
  flip_pairs=((3, 0), (4, 1), (5, 2), (9, 6), (10, 7), (11, 8)),
  skeleton=(
    (2, 1),
    (1, 0),
    (0, 13),
    (13, 3),
    (3, 4),
    (4, 5),
    (8, 7),
    (7, 6),
    (6, 9),
    (9, 10),
    (10, 11),
    (12, 13),
    (0, 6),
    (3, 9),
  ),
  # The AI Challenger evaluation's sigmas, as used by mmpose.
  sigmas=(
    0.01388152,
    0.01515228,
    0.01057665,
    0.01417709,
    0.01497891,
    0.01402144,
    0.03909642,
    0.03686941,
    0.01981803,
    0.03843971,
    0.03412318,
    0.02415081,
    0.01291456,
    0.01236173,
  ),
)

LSP14 = KeypointSpec(
  name="lsp14",
  # The order of LSP's and LSPET's joints.mat (Johnson & Everingham, BMVC 2010 / CVPR 2011).
  names=(
    "right_ankle",
    "right_knee",
    "right_hip",
    "left_hip",
    "left_knee",
    "left_ankle",
    "right_wrist",
    "right_elbow",
    "right_shoulder",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "neck",
    "head_top",
  ),
  flip_pairs=((3, 2), (4, 1), (5, 0), (9, 8), (10, 7), (11, 6)),
  skeleton=(
    (0, 1),
    (1, 2),
    (5, 4),
    (4, 3),
    (2, 3),
    (6, 7),
    (7, 8),
    (11, 10),
    (10, 9),
    (8, 12),
    (9, 12),
    (12, 13),
    (8, 2),
    (9, 3),
  ),
  # LSP defines no OKS sigmas (its metric is PCK): COCO's for the same joints, COCO's shoulder for the neck and
  # its eye / nose scale for the head top. They serve COCO-style AP only; PCK needs none.
  sigmas=(0.089, 0.087, 0.107, 0.107, 0.087, 0.089, 0.062, 0.072, 0.079, 0.079, 0.072, 0.062, 0.079, 0.026),
)

_REGISTRY: dict[str, KeypointSpec] = {s.name: s for s in (COCO17, MPII16, AIC14, LSP14)}
_ALIASES = {"coco": "coco17", "mpii": "mpii16", "aic": "aic14", "lsp": "lsp14", "lspet": "lsp14"}
# Functions name -> KeypointSpec | None consulted for names the registry does not hold (gin's custom_spec).
_RESOLVERS: list[Callable[[str], "KeypointSpec | None"]] = []


def register_spec(spec: KeypointSpec, overwrite: bool = False) -> KeypointSpec:
  """Adds a spec to the registry so that :func:`get_spec` finds it by name."""
  if spec.name in _ALIASES or (spec.name in _REGISTRY and not overwrite and _REGISTRY[spec.name] != spec):
    raise ValueError(f"a different keypoint spec named {spec.name!r} is already registered")
  _REGISTRY[spec.name] = spec
  return spec


class UnknownSpecError(KeyError):
  """No spec of that name; a KeyError whose message prints without KeyError's quotes."""

  def __str__(self) -> str:
    return str(self.args[0]) if self.args else ""


def add_resolver(resolver: Callable[[str], "KeypointSpec | None"]) -> None:
  """Makes :func:`get_spec` ask ``resolver(name)`` for names the registry does not hold (None: not known)."""
  if resolver not in _RESOLVERS:
    _RESOLVERS.append(resolver)


def get_spec(spec: str | KeypointSpec | dict) -> KeypointSpec:
  """A spec by name (``coco17``/``coco``, ``mpii16``/``mpii``, ``aic14``/``aic``, ``lsp14``/``lsp``, one registered
  in Python, or one defined in gin with ``custom_spec`` once gin is parsed), or from its JSON form (a dict, as
  manifests and saved networks store it)."""
  if isinstance(spec, KeypointSpec):
    return spec
  if isinstance(spec, dict):
    return KeypointSpec.from_json(spec)
  name = _ALIASES.get(spec, spec)
  if name in _REGISTRY:
    return _REGISTRY[name]
  for resolver in _RESOLVERS:
    found = resolver(name)
    if found is not None:
      return found
  raise UnknownSpecError(
    f"unknown keypoint spec {spec!r}; known: {sorted(_REGISTRY)} (define a custom one in gin: "
    f"{name}/custom_spec.names = [...], {name}/custom_spec.flip_pairs = [...]; or in Python with "
    "semipose_tf.keypoints.register_spec)"
  )


def describe(spec: KeypointSpec) -> str:
  """``name (K keypoints)``, for error messages."""
  return f"{spec.name!r} ({spec.num_keypoints} keypoints)"


def check_same(
  data_spec: KeypointSpec, model_spec: KeypointSpec, data_where: str, model_where: str, binding: str = "DataConfig.spec"
) -> None:
  """Raises ValueError naming both when a data set's spec and a network's disagree (names or count)."""
  if data_spec.names != model_spec.names:
    raise ValueError(
      f"keypoint spec mismatch: {data_where} holds {describe(data_spec)}, {model_where} predicts "
      f"{describe(model_spec)}; convert the data with that spec or change {binding}"
    )


def custom_spec(
  name: str,
  names: Sequence[str],
  flip_pairs: Sequence[Sequence[int]] = (),
  skeleton: Sequence[Sequence[int]] = (),
  sigmas: Sequence[float] | None = None,
  colors: Sequence[Sequence[int]] = (),
) -> KeypointSpec:
  """Builds and registers a custom spec; the gin-facing constructor (``mine/custom_spec.names = [...]``).

  Args:
    name: Registry name.
    names: K keypoint names, in channel order.
    flip_pairs: ``(left, right)`` index pairs (the person's left joint first).
    skeleton: ``(a, b)`` index pairs drawn as limbs.
    sigmas: K OKS sigmas; COCO-style AP needs them (PCK does not).
    colors: Optional RGB colour per limb.
  """
  return register_spec(
    KeypointSpec(
      name=name,
      names=tuple(names),
      flip_pairs=tuple(map(tuple, flip_pairs)),
      skeleton=tuple(map(tuple, skeleton)),
      sigmas=None if sigmas is None else tuple(sigmas),
      colors=tuple(map(tuple, colors)),
    ),
    overwrite=True,
  )
