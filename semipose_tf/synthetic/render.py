"""Synthetic people with the COCO-17 skeleton, rendered with numpy, for the demo and the small-scale benchmark.

A figure is a 2D kinematic tree (pelvis -> torso -> neck -> head, shoulders -> elbows -> wrists, hips -> knees
-> ankles) with random proportions, lean, limb angles, knee and elbow bends, and a head yaw that decides which side
faces the camera. Limbs are shaded capsules; the person's left limbs are a darker shade of the clothing colour than
the right ones and the face (eyes, nose) shows only when the head faces the camera, so left and right can be told
apart from the image as with real people. Several people per image, cluttered backgrounds with limb-like
distractors, occluding objects, and for hard images blur, darkness and noise.

Visibility is set honestly from the render: v = 2 when the topmost painted part at the joint belongs to that
joint's own body parts, v = 1 when something else (another part, another person, an occluder) covers it or the
face looks away from the camera for ears, v = 0 (and x = y = 0) when the joint is outside the image or a face point
looks away. Each annotation also records ``hard`` (degraded image, heavy occlusion or a tiny person) and its
reasons, an independent difficulty measure for the benchmark.

This module is numpy-only so that worker processes stay light; JPEG encoding happens in the writer.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from semipose_tf.keypoints import COCO17

# Part ids (per person); the joints each part "owns" for the visibility test.
_PARTS = (
  "torso",
  "head",
  "l_upper_arm",
  "l_forearm",
  "r_upper_arm",
  "r_forearm",
  "l_thigh",
  "l_shin",
  "r_thigh",
  "r_shin",
  "l_hand",
  "r_hand",
  "l_foot",
  "r_foot",
  "neck",
)
_OWNERS = {
  0: ("head",),
  1: ("head",),
  2: ("head",),
  3: ("head",),
  4: ("head",),
  5: ("torso", "l_upper_arm"),
  6: ("torso", "r_upper_arm"),
  7: ("l_upper_arm", "l_forearm"),
  8: ("r_upper_arm", "r_forearm"),
  9: ("l_forearm", "l_hand"),
  10: ("r_forearm", "r_hand"),
  11: ("torso", "l_thigh"),
  12: ("torso", "r_thigh"),
  13: ("l_thigh", "l_shin"),
  14: ("r_thigh", "r_shin"),
  15: ("l_shin", "l_foot"),
  16: ("r_shin", "r_foot"),
}


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
  """What to render.

  Attributes:
    image_size: (H, W) of each image.
    max_people: People per image are drawn from 1..max_people.
    min_height, max_height: Person height as a fraction of the image height.
    hard_prob: Probability that an image is degraded (blur, darkness, noise).
    occluder_prob: Probability that a person gets an occluding object in front.
    clutter: Number of background shapes (a range is drawn around it).
  """

  image_size: tuple[int, int] = (240, 320)
  max_people: int = 3
  min_height: float = 0.3
  max_height: float = 0.95
  hard_prob: float = 0.25
  occluder_prob: float = 0.35
  clutter: int = 14


def _rot(v: np.ndarray, a: float) -> np.ndarray:
  c, s = math.cos(a), math.sin(a)
  return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])


class _Canvas:
  """Colour buffer plus a per-pixel owner id (person * 64 + part, -1 background, -2 occluder)."""

  def __init__(self, h: int, w: int):
    self.h, self.w = h, w
    self.rgb = np.zeros((h, w, 3), np.float32)
    self.owner = np.full((h, w), -1, np.int32)
    self.yy, self.xx = np.mgrid[0:h, 0:w].astype(np.float32)

  def _window(self, x0, y0, x1, y1):
    xa, ya = max(0, int(math.floor(x0))), max(0, int(math.floor(y0)))
    xb, yb = min(self.w, int(math.ceil(x1)) + 1), min(self.h, int(math.ceil(y1)) + 1)
    if xa >= xb or ya >= yb:
      return None
    return slice(ya, yb), slice(xa, xb)

  def capsule(self, p, q, r, color, owner, shade=True):
    win = self._window(min(p[0], q[0]) - r, min(p[1], q[1]) - r, max(p[0], q[0]) + r, max(p[1], q[1]) + r)
    if win is None:
      return
    xs, ys = self.xx[win], self.yy[win]
    d = q - p
    t = np.clip(((xs - p[0]) * d[0] + (ys - p[1]) * d[1]) / max(float(d @ d), 1e-6), 0, 1)
    dist = np.hypot(xs - (p[0] + t * d[0]), ys - (p[1] + t * d[1]))
    self._paint(win, dist <= r, dist / max(r, 1e-3), color, owner, shade)

  def ellipse(self, c, rx, ry, angle, color, owner, shade=True):
    rr = max(rx, ry)
    win = self._window(c[0] - rr, c[1] - rr, c[0] + rr, c[1] + rr)
    if win is None:
      return
    xs, ys = self.xx[win] - c[0], self.yy[win] - c[1]
    ca, sa = math.cos(angle), math.sin(angle)
    u, v = (xs * ca + ys * sa) / max(rx, 1e-3), (-xs * sa + ys * ca) / max(ry, 1e-3)
    dist = np.sqrt(u * u + v * v)
    self._paint(win, dist <= 1.0, dist, color, owner, shade)

  def polygon(self, pts, color, owner, shade=False):
    pts = np.asarray(pts, np.float32)
    win = self._window(pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max())
    if win is None:
      return
    xs, ys = self.xx[win], self.yy[win]
    inside = np.ones(xs.shape, bool)
    area = 0.0
    for i in range(len(pts)):
      a, b = pts[i], pts[(i + 1) % len(pts)]
      area += a[0] * b[1] - b[0] * a[1]
    sign = 1.0 if area >= 0 else -1.0
    for i in range(len(pts)):
      a, b = pts[i], pts[(i + 1) % len(pts)]
      inside &= sign * ((b[0] - a[0]) * (ys - a[1]) - (b[1] - a[1]) * (xs - a[0])) >= 0
    self._paint(win, inside, None, color, owner, shade)

  def _paint(self, win, mask, dist, color, owner, shade):
    if not mask.any():
      return
    col = np.asarray(color, np.float32)
    if shade and dist is not None:
      light = (0.72 + 0.28 * np.sqrt(np.clip(1.0 - dist * dist, 0.0, 1.0)))[..., None]
      pix = col * light
    else:
      pix = np.broadcast_to(col, mask.shape + (3,))
    region = self.rgb[win]
    region[mask] = pix[mask] if pix.ndim == 3 else pix
    self.owner[win][mask] = owner


def _background(rng: np.random.Generator, canvas: _Canvas, clutter: int) -> None:
  h, w = canvas.h, canvas.w
  c0, c1 = rng.uniform(20, 235, 3), rng.uniform(20, 235, 3)
  t = canvas.yy / h * rng.uniform(-1, 1) + canvas.xx / w * rng.uniform(-1, 1)
  t = (t - t.min()) / max(t.max() - t.min(), 1e-6)
  canvas.rgb[:] = c0 + (c1 - c0) * t[..., None]
  # Low-frequency texture.
  small = rng.normal(0, 18, (h // 16 + 2, w // 16 + 2, 3)).astype(np.float32)
  canvas.rgb += np.repeat(np.repeat(small, 16, 0), 16, 1)[:h, :w]
  for _ in range(int(rng.integers(clutter // 2, clutter + clutter // 2 + 1))):
    color = rng.uniform(0, 255, 3)
    kind = rng.integers(4)
    c = rng.uniform([0, 0], [w, h])
    size = rng.uniform(0.03, 0.25) * min(h, w)
    if kind == 0:
      canvas.polygon(
        [
          c,
          c + [size * rng.uniform(0.5, 2), 0],
          c + [size * rng.uniform(0.5, 2), size],
          c + [0, size * rng.uniform(0.5, 2)],
        ],
        color,
        -1,
      )
    elif kind == 1:
      canvas.ellipse(c, size * rng.uniform(0.3, 1), size * rng.uniform(0.3, 1), rng.uniform(0, np.pi), color, -1)
    else:  # Limb-like distractors: capsules and bent "arms" in skin and cloth colours.
      a = rng.uniform(0, 2 * np.pi)
      q = c + _rot(np.array([size, 0.0]), a)
      r = rng.uniform(0.015, 0.04) * min(h, w)
      canvas.capsule(c, q, r, color, -1)
      if kind == 3:
        canvas.capsule(q, q + _rot(q - c, rng.uniform(-1.5, 1.5)) * rng.uniform(0.6, 1), r * 0.9, color, -1)


def _person(rng: np.random.Generator, height_px: float, hip: np.ndarray):
  """Joint positions (COCO order) and drawing parameters of one figure."""
  u = height_px
  pr = lambda v: v * u * rng.uniform(0.9, 1.1)  # noqa: E731
  torso_len, neck_len, head_r = pr(0.30), pr(0.045), pr(0.065)
  shoulder_w, hip_w = pr(0.105), pr(0.07)
  upper_arm, forearm, thigh, shin = pr(0.165), pr(0.15), pr(0.24), pr(0.23)
  lean = rng.normal(0, 0.18) if rng.random() < 0.85 else rng.uniform(-1.2, 1.2)
  up = _rot(np.array([0.0, -1.0]), lean)
  lateral = _rot(up, math.pi / 2)  # Image-right for an upright figure.
  yaw = rng.uniform(-math.pi, math.pi)
  side_off = {"l": math.cos(yaw), "r": -math.cos(yaw)}  # Lateral factor of each side (left on image right if facing).
  neck = hip + up * torso_len
  head = neck + _rot(up, rng.normal(0, 0.15)) * (neck_len + head_r)
  kp = np.zeros((17, 2))
  kp_depth = np.zeros(17)
  # Face on a sphere: azimuth 0 faces the camera.
  for j, az, lift in (
    (0, yaw, -0.05),
    (1, yaw + 0.35, 0.25),
    (2, yaw - 0.35, 0.25),
    (3, yaw + math.pi / 2, 0.15),
    (4, yaw - math.pi / 2, 0.15),
  ):
    kp[j] = head + lateral * head_r * math.sin(az) + up * head_r * lift
    kp_depth[j] = math.cos(az)
  limbs = {}
  pose = rng.random()
  for side, sign in (("l", 1.0), ("r", -1.0)):
    out = lateral * side_off[side]
    sh = (
      neck
      - up * (0.08 * torso_len)
      + out * shoulder_w / max(abs(side_off[side]), 1e-3) * max(abs(side_off[side]), 0.25)
    )
    hp = hip + out * hip_w / max(abs(side_off[side]), 1e-3) * max(abs(side_off[side]), 0.25)
    outward = 1.0 if side_off[side] >= 0 else -1.0
    if pose < 0.15:  # Arms raised.
      a_s = rng.uniform(2.2, 3.0)
    elif pose < 0.3:  # Arms out.
      a_s = rng.uniform(1.2, 1.9)
    else:
      a_s = abs(rng.normal(0.35, 0.5))
    a_e = rng.uniform(0, 2.3) * (1 if rng.random() < 0.8 else -0.4)
    down = -up
    d_upper = _rot(down, outward * a_s * (1 if rng.random() < 0.85 else -0.6))
    elbow = sh + d_upper * upper_arm
    wrist = elbow + _rot(d_upper, outward * a_e * rng.choice([-1, 1])) * forearm
    if pose > 0.9:  # Sitting / squatting.
      a_h, a_k = rng.uniform(1.0, 1.7), rng.uniform(1.2, 2.0)
    else:
      a_h, a_k = rng.normal(0.08, 0.3), abs(rng.normal(0.15, 0.45))
    walk = rng.choice([-1, 1])
    d_thigh = _rot(down, outward * 0.05 + walk * a_h * (1 if side == "l" else -0.6))
    knee = hp + d_thigh * thigh
    ankle = knee + _rot(d_thigh, -walk * a_k) * shin
    idx = {"l": (5, 7, 9, 11, 13, 15), "r": (6, 8, 10, 12, 14, 16)}[side]
    for j, p in zip(idx, (sh, elbow, wrist, hp, knee, ankle)):
      kp[j] = p
      kp_depth[j] = -math.sin(yaw) * sign  # The side turned toward the camera is in front.
    limbs[side] = dict(sh=sh, elbow=elbow, wrist=wrist, hip=hp, knee=knee, ankle=ankle, walk=walk)
  widths = dict(arm=pr(0.033), leg=pr(0.045))
  return kp, kp_depth, limbs, dict(neck=neck, head=head, head_r=head_r, hip=hip, up=up, yaw=yaw, **widths)


def _draw_person(canvas: _Canvas, rng: np.random.Generator, pid: int, kp, limbs, geo) -> None:
  cloth = rng.uniform(40, 230, 3)
  pants = rng.uniform(20, 200, 3)
  skin = np.array([rng.uniform(90, 240), rng.uniform(60, 190), rng.uniform(40, 160)])
  # The person's left side is darker: a consistent cue for left vs right, like handedness of real clothing.
  shade = {"l": 0.62, "r": 1.0}
  part = lambda name: pid * 64 + _PARTS.index(name)  # noqa: E731
  front = "l" if math.sin(geo["yaw"]) < 0 else "r"
  back = "r" if front == "l" else "l"

  def limb_set(side):
    L = limbs[side]
    s = shade[side]
    canvas.capsule(L["hip"], L["knee"], geo["leg"], pants * s, part(f"{side}_thigh"))
    canvas.capsule(L["knee"], L["ankle"], geo["leg"] * 0.85, pants * s, part(f"{side}_shin"))
    foot_dir = _rot(-geo["up"], -L["walk"] * 1.3)
    canvas.capsule(
      L["ankle"], L["ankle"] + foot_dir * geo["leg"] * 1.6, geo["leg"] * 0.55, skin * 0.4 * s + 20, part(f"{side}_foot")
    )

  def arm_set(side):
    L = limbs[side]
    s = shade[side]
    canvas.capsule(L["sh"], L["elbow"], geo["arm"], cloth * s, part(f"{side}_upper_arm"))
    canvas.capsule(L["elbow"], L["wrist"], geo["arm"] * 0.85, cloth * s * 0.9, part(f"{side}_forearm"))
    canvas.ellipse(
      L["wrist"] + (L["wrist"] - L["elbow"]) * 0.15, geo["arm"] * 1.05, geo["arm"] * 0.9, 0, skin, part(f"{side}_hand")
    )

  arm_set(back)
  limb_set(back)
  left, right = limbs["l"], limbs["r"]
  canvas.polygon([left["sh"], right["sh"], right["hip"], left["hip"]], cloth, part("torso"))
  canvas.capsule(left["sh"], right["sh"], geo["arm"], cloth, part("torso"))
  canvas.capsule(left["hip"], right["hip"], geo["leg"] * 0.9, pants, part("torso"))
  canvas.capsule(geo["neck"], geo["head"], geo["head_r"] * 0.45, skin, part("neck"))
  limb_set(front)
  hair = rng.uniform(10, 120, 3)
  canvas.ellipse(
    geo["head"], geo["head_r"], geo["head_r"] * 1.12, math.atan2(geo["up"][0], -geo["up"][1]), skin, part("head")
  )
  facing = math.cos(geo["yaw"])
  if facing < 0.3:  # Back of the head: hair over most of it.
    canvas.ellipse(
      geo["head"] + geo["up"] * geo["head_r"] * 0.1, geo["head_r"] * 0.95, geo["head_r"] * 1.05, 0, hair, part("head")
    )
  else:
    canvas.ellipse(
      geo["head"] + geo["up"] * geo["head_r"] * 0.75, geo["head_r"] * 0.9, geo["head_r"] * 0.45, 0, hair, part("head")
    )
  er = max(geo["head_r"] * 0.14, 0.8)
  for j in (3, 4):  # Ears, when not behind the head.
    if math.cos(geo["yaw"] + (math.pi / 2 if j == 3 else -math.pi / 2)) > -0.2:
      canvas.ellipse(kp[j], er * 1.3, er * 1.8, 0, skin * 0.8, part("head"))
  for j in (1, 2):  # Eyes: light with a dark pupil.
    if math.cos(geo["yaw"] + (0.35 if j == 1 else -0.35)) > 0:
      canvas.ellipse(kp[j], er * 1.4, er, 0, (240, 240, 240), part("head"), shade=False)
      canvas.ellipse(kp[j], er * 0.6, er * 0.6, 0, (20, 20, 20), part("head"), shade=False)
  if math.cos(geo["yaw"]) > 0:
    canvas.ellipse(kp[0], er * 0.9, er * 1.2, 0, skin * 0.6, part("head"), shade=False)
  arm_set(front)


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
  r = max(1, int(3 * sigma))
  k = np.exp(-(np.arange(-r, r + 1) ** 2) / (2 * sigma * sigma))
  k /= k.sum()
  for axis in (0, 1):
    pad = [(0, 0)] * 3
    pad[axis] = (r, r)
    p = np.pad(img, pad, mode="edge")
    n = img.shape[axis]
    img = sum(w * np.take(p, np.arange(i, i + n), axis=axis) for i, w in enumerate(k))
  return img


def _add_occluders(rng: np.random.Generator, canvas, people: list[dict], probability: float) -> set[int]:
  """Draws an occluder in front of each person with ``probability``; the ids of the people it covered."""
  occluded_people = set()
  for pid, p in enumerate(people):
    if rng.random() < probability:
      ys, xs = np.nonzero(p["mask"])
      if len(xs) == 0:
        continue
      j = rng.integers(len(xs))
      c = np.array([xs[j], ys[j]], np.float32)
      size = p["height"] * rng.uniform(0.12, 0.35)
      color = rng.uniform(0, 255, 3)
      if rng.random() < 0.5:
        canvas.polygon([c - size / 2, c + [size / 2, -size / 2], c + size / 2, c + [-size / 2, size / 2]], color, -2)
      else:
        canvas.ellipse(c, size * rng.uniform(0.4, 0.8), size * rng.uniform(0.4, 0.8), rng.uniform(0, 3), color, -2)
      occluded_people.add(pid)
  return occluded_people


def _degrade(rng: np.random.Generator, img: np.ndarray, hard_prob: float) -> tuple[np.ndarray, float, float]:
  """Sensor noise on every image; blur and darkness on a hard one. ``(uint8 image, blur sigma, darkness)``."""
  blur = dark = 0.0
  if rng.random() < hard_prob:
    if rng.random() < 0.6:
      blur = float(rng.uniform(1.2, 3.0))
      img = _blur(img, blur)
    if rng.random() < 0.6:
      dark = float(rng.uniform(0.55, 0.85))
      img = img * (1 - dark)
    img = img + rng.normal(0, rng.uniform(4, 14), img.shape)
  else:
    img = img + rng.normal(0, 3, img.shape)
  return np.clip(img, 0, 255).astype(np.uint8), blur, dark


def _labels(canvas, p: dict, pid: int) -> np.ndarray:
  """A person's [17, 3] COCO keypoints as an annotator would mark them: 2 where its own part is seen there, 1 where
  something else covers it, 0 outside the image or for a face point looking away."""
  h, w = canvas.owner.shape
  kps = np.zeros((17, 3), np.float32)
  for j in range(17):
    x, y = p["kp"][j]
    xi, yi = int(round(x)), int(round(y))
    if not (0 <= xi < w and 0 <= yi < h):
      continue
    if j <= 2 and p["depth"][j] <= 0:  # Nose and eyes looking away: not labeled, as COCO annotators do.
      continue
    owner = canvas.owner[yi, xi]
    mine = owner >= 0 and owner // 64 == pid and _PARTS[owner % 64] in _OWNERS[j]
    behind_head = j in (3, 4) and p["depth"][j] < -0.2
    kps[j] = (x, y, 2 if mine and not behind_head else 1)
  return kps


def render_image(seed, config: SyntheticConfig = SyntheticConfig()) -> tuple[np.ndarray, list[dict]]:
  """Renders one image.

  Args:
    seed: Anything ``np.random.default_rng`` accepts; the image is a pure function of it.
    config: What to render.

  Returns:
    uint8 [H, W, 3] RGB image and one dict per person: ``keypoints`` [17, 3] (x, y, v), ``bbox`` (x, y, w, h),
    ``area`` (visible pixels), ``hard`` and ``difficulty`` (occlusion fraction, height, blur, darkness).
  """
  rng = np.random.default_rng(seed)
  h, w = config.image_size
  canvas = _Canvas(h, w)
  _background(rng, canvas, config.clutter)
  n = int(rng.integers(1, config.max_people + 1))
  heights = np.sort(rng.uniform(config.min_height, config.max_height, n) * h)  # Small (far) first, drawn behind.
  people = []
  for pid, ph in enumerate(heights):
    hip = np.array([rng.uniform(-0.05, 1.05) * w, rng.uniform(0.35, 0.8) * h + 0.2 * ph * rng.uniform(-1, 1)])
    kp, depth, limbs, geo = _person(rng, ph, hip)
    _draw_person(canvas, rng, pid, kp, limbs, geo)
    # The silhouette right after drawing, before anything in front covers it.
    mask = (canvas.owner // 64 == pid) & (canvas.owner >= 0)
    people.append(dict(kp=kp, depth=depth, yaw=geo["yaw"], height=ph, mask=mask))
  occluded_people = _add_occluders(rng, canvas, people, config.occluder_prob)
  image, blur, dark = _degrade(rng, canvas.rgb, config.hard_prob)
  anns = []
  for pid, p in enumerate(people):
    own = (canvas.owner // 64 == pid) & (canvas.owner >= 0)
    full = p["mask"]
    kps = _labels(canvas, p, pid)
    if not kps[:, 2].any():
      continue
    ys, xs = np.nonzero(full)
    if len(xs) == 0:
      continue
    x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    visible_px = int(own.sum())
    if visible_px == 0:  # Completely hidden behind others: COCO annotates no such person (its area would be 0).
      continue
    occlusion = 1.0 - visible_px / max(int(full.sum()), 1)
    reasons = []
    if blur:
      reasons.append("blur")
    if dark:
      reasons.append("dark")
    if occlusion > 0.35:
      reasons.append("occluded")
    if p["height"] < 0.2 * h or y1 - y0 < 40:
      reasons.append("small")
    anns.append(
      dict(
        keypoints=kps,
        bbox=[float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
        area=float(visible_px),
        hard=bool(reasons),
        difficulty=dict(
          reasons=reasons,
          occlusion=round(occlusion, 3),
          height=round(float(p["height"]), 1),
          blur=round(blur, 2),
          darkness=round(dark, 2),
          occluder=pid in occluded_people,
        ),
      )
    )
  return image, anns


def coco_categories() -> list[dict]:
  """The COCO person category with the COCO-17 keypoint names and 1-based skeleton."""
  return [
    {
      "supercategory": "person",
      "id": 1,
      "name": "person",
      "keypoints": list(COCO17.names),
      "skeleton": [[a + 1, b + 1] for a, b in COCO17.skeleton],
    }
  ]
