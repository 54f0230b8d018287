"""Readers for the annotation formats: COCO / AI Challenger keypoints, the HRNet MPII json, detection boxes.

Each reader returns a :class:`Source`: the eligible person instances in annotation-file order, each with its
image, plus counts of what was left out and why. Eligibility follows the reference
(``COCODataset._load_coco_keypoint_annotation_kernal`` of HRNet / Xie et al.):

* crowd annotations (``iscrowd = 1``) are excluded (the reference asks ``getAnnIds(iscrowd=False)``);
* the box is clipped to the image (``x2 = min(width - 1, x1 + max(0, w - 1))``, likewise y) and must keep
  ``area > 0`` and ``x2 >= x1``, ``y2 >= y1``; the clipped box is what is stored;
* persons with no labeled keypoint (``max(keypoints) == 0``) are excluded from every set by default, as the
  reference's loader does for both its labeled and its unlabeled COCO sets; ``include_unannotated=True`` keeps them
  for unlabeled use only.

Problems in the input (an image file that does not exist, a keypoint list of the wrong length, a box that lies
outside its image, an image id with no image entry) are collected per annotation and either raised together as a
:class:`BadInputError` or, with ``skip_bad``, dropped and reported.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import numpy as np

from semipose_tf.codec.affine import sanitize_box
from semipose_tf.data.records import Instance
from semipose_tf.keypoints import KeypointSpec


class BadInputError(ValueError):
  """Bad input data; the message names the annotation id(s) and file(s)."""


@dataclasses.dataclass(frozen=True)
class ImageInfo:
  image_id: int
  path: str
  width: int
  height: int


@dataclasses.dataclass
class Problem:
  ann_id: int
  file: str
  reason: str

  def __str__(self):
    return f"annotation {self.ann_id} (file {self.file}): {self.reason}"


@dataclasses.dataclass
class Source:
  """Eligible instances of one annotation file, in annotation-file order.

  Attributes:
    kind: "coco", "aic", "mpii" or "detections".
    spec: The keypoint spec the keypoints follow.
    items: (image, instance, has_labels) triples; has_labels is False for detections and zero-keypoint persons.
    files: The annotation / detection files read.
    image_dir: The image folder.
    stats: Counts of annotations read and of each exclusion.
    problems: Bad annotations that were dropped (only non-empty with skip_bad).
  """

  kind: str
  spec: KeypointSpec
  items: list[tuple[ImageInfo, Instance, bool]]
  files: list[str]
  image_dir: str
  stats: dict[str, int]
  problems: list[Problem]


def report_problems(problems: list[Problem], skip_bad: bool, what: str) -> None:
  """Raises a BadInputError listing the problems unless skip_bad."""
  if problems and not skip_bad:
    listed = "\n  ".join(str(p) for p in problems[:20])
    more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
    raise BadInputError(
      f"{len(problems)} bad annotation(s) in {what}:\n  {listed}{more}\n"
      "Fix the input, or pass --skip_bad to skip them (they are counted and listed in the manifest)."
    )


def clean_box(bbox, width: int, height: int, area: float | None = None) -> np.ndarray | None:
  """The reference's box sanitation; None when nothing of the box is inside the image or it is degenerate."""
  x, y, w, h = (float(v) for v in bbox)
  x1, y1, cw, ch = sanitize_box(x, y, w, h, width, height)  # The rule the SavedModel applies too.
  if area is None:
    area = w * h
  if area > 0 and cw >= 0 and ch >= 0 and x < width and y < height and x + w > 0 and y + h > 0:
    return np.array([x1, y1, cw, ch], np.float32)
  return None


def check_values(keypoints, bbox, area, width: int, height: int) -> str | None:
  """Why an annotation's numbers cannot be used, or None: values that are not numbers, not finite, a box
  without positive width and height, or a labeled keypoint far outside the image (more than one image size beyond
  its border: a coordinate error, not a joint just out of frame)."""

  def numbers(values) -> bool:  # JSON numbers only: numpy would quietly parse "12.5".
    return isinstance(values, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)

  if not (numbers(keypoints) and (bbox is None or numbers(bbox)) and (area is None or numbers([area]))):
    return f"keypoints, bbox and area must be numbers (bbox {bbox!r:.60}, keypoints {keypoints!r:.60})"
  try:
    kps = np.asarray(keypoints, np.float64).reshape(-1, 3)
    box = np.asarray(bbox if bbox is not None else [0, 0, 0, 0], np.float64).reshape(4)
    area = float(area) if area is not None else float(box[2] * box[3])
  except (TypeError, ValueError):
    return f"keypoints, bbox and area must be numbers (bbox {bbox!r:.60}, keypoints {keypoints!r:.60})"
  if not (np.isfinite(kps).all() and np.isfinite(box).all() and np.isfinite(area)):
    return "a keypoint, bbox or area value is NaN or infinite"
  if box[2] <= 0 or box[3] <= 0:
    return f"box {bbox} has no positive width and height (x, y, w, h)"
  if area <= 0:  # The reference keeps only people with a positive area.
    return f"area {area:g} is not positive (the person's area in pixels; the reference skips such people)"
  flags = kps[:, 2]
  odd = ~np.isin(flags, (0, 1, 2))
  if odd.any():
    j = int(np.argmax(odd))
    return f"keypoint {j} has visibility {flags[j]:g}; COCO visibility is 0 (not labeled), 1 (occluded) or 2 (visible)"
  return far_outside(kps[:, :2], kps[:, 2] > 0, width, height)


def far_outside(xy: np.ndarray, labeled: np.ndarray, width: int, height: int) -> str | None:
  """Why a labeled keypoint cannot be right (more than one image size beyond the image's border: a coordinate error,
  not a joint just out of frame), or None. ``xy`` [K, 2], ``labeled`` [K] bool."""
  x, y = np.asarray(xy, np.float64).T
  far = np.asarray(labeled, bool) & ((x < -width) | (x > 2 * width) | (y < -height) | (y > 2 * height))
  if far.any():
    j = int(np.argmax(far))
    return f"keypoint {j} at ({x[j]:g}, {y[j]:g}) lies far outside the {width}x{height} image"
  return None


def inside(image_dir: str, file_name: str, what: str) -> str:
  """``image_dir/file_name``, refusing a name that leaves ``image_dir``: absolute, through ``..``, or a symbolic
  link inside it that points outside (the one containment rule of every converter: nothing is read from outside
  the folder the user named)."""
  if not isinstance(file_name, str) or not file_name or os.path.isabs(file_name):
    raise BadInputError(f"{what}: file_name {file_name!r} is not a path inside --images {image_dir}")
  root = os.path.realpath(image_dir)
  joined = os.path.join(image_dir, file_name)
  if os.path.commonpath([root, os.path.normpath(os.path.join(root, file_name))]) != root:
    raise BadInputError(f"{what}: file_name {file_name!r} is not a path inside --images {image_dir}")
  target = os.path.realpath(joined)
  if os.path.commonpath([root, target]) != root:
    raise BadInputError(
      f"{what}: {joined} is a link to {target}, outside --images {image_dir}; copy the file "
      "into the folder or name the folder it lives in"
    )
  return joined


def _load_json(path: str) -> Any:
  if not os.path.exists(path):
    raise FileNotFoundError(f"annotation file not found: {path}")
  try:
    with open(path) as f:
      return json.load(f)
  except json.JSONDecodeError as e:
    raise BadInputError(f"{path}: not valid JSON ({e})") from e


def image_size(path: str) -> tuple[int, int]:
  """(width, height) from an image header.

  Raises:
    BadInputError: the file is empty or not a readable image.
  """
  import tensorflow as tf  # Local: reading the header is the only TF use here.

  data = tf.io.read_file(path)
  try:
    if bool(tf.io.is_jpeg(data)):
      h, w, _ = tf.io.extract_jpeg_shape(data).numpy()
    else:
      h, w = tf.shape(tf.io.decode_image(data, channels=3, expand_animations=False)).numpy()[:2]
  except tf.errors.OpError:
    size = os.path.getsize(path)
    raise BadInputError(f"not a readable image ({size} bytes)" if size else "an empty file (0 bytes)") from None
  return int(w), int(h)


def _coco_images(entries: list, annotations: str, image_dir: str) -> dict[int, ImageInfo]:
  """The ``images`` list of a COCO file by id: each file inside ``image_dir``, its size given, ids unique."""
  images: dict[int, ImageInfo] = {}
  for im in entries:
    where = f"{annotations}: image id {im.get('id')}"
    path = inside(image_dir, im.get("file_name", ""), where)
    missing = [key for key in ("id", "width", "height") if key not in im]
    if missing:
      raise BadInputError(
        f"{where} ({im.get('file_name')!r}) has no {' or '.join(missing)}: a COCO image entry "
        "needs id, file_name, width and height"
      )
    if im["id"] in images:
      if images[im["id"]].path != path:  # Its people would be stored with the first image's pixels.
        raise BadInputError(
          f"{annotations}: image id {im['id']} is listed twice, as {images[im['id']].path} and "
          f"{path}; image ids must be unique"
        )
      continue
    images[im["id"]] = ImageInfo(int(im["id"]), path, int(im["width"]), int(im["height"]))
  return images


def _coco_annotation_problem(ann: dict, info: ImageInfo, spec: KeypointSpec) -> tuple[str | None, np.ndarray | None]:
  """``(why the annotation cannot be used, None)`` or ``(None, its sanitized box)``."""
  k = spec.num_keypoints
  kps = ann.get("keypoints", [])
  if not isinstance(kps, list) or len(kps) != 3 * k:
    n = len(kps) if isinstance(kps, list) else type(kps).__name__
    return f"{n} keypoint values, expected {3 * k} ({k} keypoints x 3) for spec {spec.name!r}", None
  reason = check_values(kps, ann.get("bbox"), ann.get("area"), info.width, info.height)
  if reason:
    return reason, None
  box = clean_box(ann.get("bbox", [0, 0, 0, 0]), info.width, info.height, ann.get("area"))
  if box is None:
    return f"box {ann.get('bbox')} lies outside the {info.width}x{info.height} image or is empty", None
  return None, box


def load_coco(
  annotations: str,
  image_dir: str,
  spec: KeypointSpec,
  skip_bad: bool = False,
  include_unannotated: bool = False,
  kind: str = "coco",
) -> Source:
  """Reads a COCO-format person keypoint json (COCO-17, AI Challenger-14 or any spec of the same layout)."""
  data = _load_json(annotations)
  for key in ("images", "annotations"):
    if key not in data:
      raise BadInputError(f"{annotations}: no {key!r} list; is this a COCO-format keypoint file?")
  images = _coco_images(data["images"], annotations, image_dir)
  person_ids = {c["id"] for c in data.get("categories", []) if c.get("name") == "person"} or {1}
  exists: dict[str, bool] = {}
  k = spec.num_keypoints
  stats = dict(
    annotations=len(data["annotations"]),
    non_person=0,
    crowd=0,
    zero_keypoints=0,
    bad=0,
    labeled_candidates=0,
    unlabeled_candidates=0,
  )
  items, problems = [], []
  seen_ids: set[int] = set()
  for ann in data["annotations"]:
    ann_id = int(ann.get("id", -1))
    if ann.get("category_id", 1) not in person_ids:
      stats["non_person"] += 1
      continue
    if ann.get("iscrowd", 0):
      stats["crowd"] += 1
      continue
    info = images.get(ann.get("image_id"))
    if info is None:
      problems.append(Problem(ann_id, annotations, f"image_id {ann.get('image_id')} has no entry in 'images'"))
      continue
    if info.path not in exists:
      exists[info.path] = os.path.isfile(info.path)
    if not exists[info.path]:
      problems.append(Problem(ann_id, info.path, "image file not found"))
      continue
    if ann_id in seen_ids:
      problems.append(Problem(ann_id, annotations, "duplicate annotation id"))
      continue
    seen_ids.add(ann_id)
    reason, box = _coco_annotation_problem(ann, info, spec)
    if reason:
      problems.append(Problem(ann_id, info.path, reason))
      continue
    kps = ann["keypoints"]
    kps = np.asarray(kps, np.float32).reshape(k, 3)
    has_labels = bool(kps.max() > 0)
    if not has_labels:
      stats["zero_keypoints"] += 1
      if not include_unannotated:
        continue
    area = float(ann.get("area", box[2] * box[3]))
    items.append((info, Instance(ann_id, box, kps, 1.0, area), has_labels))
  stats["bad"] = len(problems)
  report_problems(problems, skip_bad, annotations)
  stats["labeled_candidates"] = sum(1 for it in items if it[2])
  stats["unlabeled_candidates"] = len(items)
  return Source(kind, spec, items, [annotations], image_dir, stats, problems)


def _mpii_entry_problem(ann) -> str | None:
  """Why an MPII entry's numbers cannot be read (center, scale, joints, joints_vis), or None."""
  if not isinstance(ann, dict):
    return f"entry {ann!r:.60} is not an object with image, center, scale, joints, joints_vis"

  def numbers(values) -> bool:
    flat = np.asarray(values, dtype=object).reshape(-1) if isinstance(values, list) else None
    return flat is not None and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in flat)

  scale, center = ann.get("scale"), ann.get("center")
  if not (isinstance(scale, (int, float)) and not isinstance(scale, bool) and np.isfinite(scale) and scale > 0):
    return f"scale {scale!r} is not a positive number (the person's height / 200 px)"
  if not (isinstance(center, list) and len(center) == 2 and numbers(center) and np.isfinite(center).all()):
    return f"center {center!r} is not [x, y] in pixels"
  for key in ("joints", "joints_vis"):
    try:
      ok = numbers(ann.get(key, [])) and np.isfinite(np.asarray(ann.get(key, []), np.float64)).all()
    except (TypeError, ValueError):  # Ragged lists.
      ok = False
    if not ok:
      return f"{key} must be finite numbers ({ann.get(key)!r:.60})"
  return None


def load_mpii(annotations: str, image_dir: str, spec: KeypointSpec, skip_bad: bool = False) -> Source:
  """Reads the HRNet/SimpleBaseline MPII json: a list of {image, center, scale, joints, joints_vis}.

  As the reference does: ``center[1] += 15 * scale`` and everything is shifted by -1 (MATLAB 1-based to 0-based).
  The stored box is the square of side ``200 * scale`` around that centre, so that ``box_to_center_scale`` with a
  square input and padding 1.25 gives back exactly the reference's centre and ``1.25 * scale``.
  """
  data = _load_json(annotations)
  if not isinstance(data, list):
    raise BadInputError(f"{annotations}: expected a list of {{image, center, scale, joints, joints_vis}}")
  k = spec.num_keypoints
  sizes: dict[str, tuple[int, int] | None] = {}
  ids: dict[str, int] = {}
  stats = dict(annotations=len(data), zero_keypoints=0, bad=0)
  items, problems = [], []
  for ann_id, ann in enumerate(data):
    path = inside(image_dir, ann.get("image", ""), f"{annotations}: entry {ann_id}")
    if path not in sizes:
      try:
        sizes[path] = image_size(path) if os.path.isfile(path) else None
      except BadInputError as e:
        problems.append(Problem(ann_id, path, str(e)))
        continue
    if sizes[path] is None:
      problems.append(Problem(ann_id, path, "image file not found"))
      continue
    width, height = sizes[path]
    reason = _mpii_entry_problem(ann)
    if reason:
      problems.append(Problem(ann_id, path, reason))
      continue
    joints = np.asarray(ann.get("joints", []), np.float32)
    vis = np.asarray(ann.get("joints_vis", []), np.float32).reshape(-1)
    if joints.shape != (k, 2) or vis.shape != (k,):
      problems.append(
        Problem(
          ann_id,
          path,
          f"joints {list(joints.shape)} / joints_vis {list(vis.shape)}, "
          f"expected [{k}, 2] / [{k}] for spec {spec.name!r}",
        )
      )
      continue
    s = float(ann["scale"])
    cx, cy = (float(v) for v in ann["center"])
    if cx != -1:
      cy += 15 * s
    cx, cy = cx - 1, cy - 1
    side = s * 200.0
    box = clean_box([cx - side / 2, cy - side / 2, side, side], width, height)
    if box is None or s <= 0:
      problems.append(
        Problem(ann_id, path, f"person box (center {ann['center']}, scale {s}) lies outside the {width}x{height} image")
      )
      continue
    # Keep the unclipped square: clipping would move the centre away from the reference's.
    box = np.array([cx - side / 2, cy - side / 2, side, side], np.float32)
    kps = np.zeros((k, 3), np.float32)
    labeled = vis > 0
    kps[labeled, :2] = joints[labeled] - 1
    kps[:, 2] = labeled.astype(np.float32)
    if not labeled.any():
      stats["zero_keypoints"] += 1
      continue
    image_id = ids.setdefault(path, len(ids))
    items.append((ImageInfo(image_id, path, width, height), Instance(ann_id, box, kps, 1.0, side * side), True))
  stats["bad"] = len(problems)
  report_problems(problems, skip_bad, annotations)
  stats["labeled_candidates"] = stats["unlabeled_candidates"] = len(items)
  return Source("mpii", spec, items, [annotations], image_dir, stats, problems)


def load_detections(
  detections: str,
  image_dir: str,
  spec: KeypointSpec,
  score_threshold: float = 0.5,
  image_info: str | None = None,
  skip_bad: bool = False,
) -> Source:
  """Reads person detections in the COCO results format ([{image_id, category_id, bbox, score}]).

  Image file names come from ``image_info`` (a json with a COCO ``images`` list, e.g. COCO's
  ``image_info_unlabeled2017.json``) when given, else from the COCO convention ``%012d.jpg``. Keypoints are
  zero: these instances are for the unlabeled set only. ``ann_id`` is the detection's index in the file.
  """
  dets = _load_json(detections)
  if not isinstance(dets, list):
    raise BadInputError(f"{detections}: expected a list of detections (COCO results format)")
  infos: dict[int, ImageInfo] = {}
  if image_info:
    listed = _load_json(image_info)
    if not isinstance(listed, dict) or not isinstance(listed.get("images"), list):
      raise BadInputError(f"{image_info}: no 'images' list; --image_info takes a json with a COCO 'images' list")
    infos = _coco_images(listed["images"], image_info, image_dir)
  stats = dict(annotations=len(dets), non_person=0, below_threshold=0, bad=0)
  items, problems = [], []
  missing: set[int] = set()
  for ann_id, det in enumerate(dets):
    if det.get("category_id", 1) != 1:
      stats["non_person"] += 1
      continue
    score = det.get("score", 1.0)
    if not isinstance(score, (int, float)) or isinstance(score, bool) or not np.isfinite(score):
      problems.append(Problem(ann_id, detections, f"score {score!r} is not a finite number"))
      continue
    if score < score_threshold:
      stats["below_threshold"] += 1
      continue
    image_id = int(det["image_id"])
    info = infos.get(image_id)
    if info is None and image_id not in missing:
      path = inside(image_dir, f"{image_id:012d}.jpg", f"{detections}: detection {ann_id}")
      if image_info or not os.path.isfile(path):
        missing.add(image_id)
      else:
        try:
          w, h = image_size(path)
        except BadInputError as e:
          problems.append(Problem(ann_id, path, str(e)))
          continue
        info = infos[image_id] = ImageInfo(image_id, path, w, h)
    if info is None or not os.path.isfile(info.path):
      where = info.path if info else os.path.join(image_dir, f"{image_id:012d}.jpg")
      problems.append(
        Problem(
          ann_id,
          where,
          "image file not found" if info or not image_info else f"image_id {image_id} has no entry in {image_info}",
        )
      )
      continue
    box = clean_box(det["bbox"], info.width, info.height)
    if box is None:
      problems.append(
        Problem(ann_id, info.path, f"box {det['bbox']} lies outside the {info.width}x{info.height} image or is empty")
      )
      continue
    kps = np.zeros((spec.num_keypoints, 3), np.float32)
    items.append((info, Instance(ann_id, box, kps, float(score), float(box[2] * box[3])), False))
  stats["bad"] = len(problems)
  report_problems(problems, skip_bad, detections)
  stats["labeled_candidates"] = 0
  stats["unlabeled_candidates"] = len(items)
  files = [detections] + ([image_info] if image_info else [])
  return Source("detections", spec, items, files, image_dir, stats, problems)
