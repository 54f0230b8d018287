"""Leeds Sports Pose (LSP) and LSP Extended (LSPET): ``joints.mat`` + ``images/im%05d.jpg`` to a fixed split.

Layouts of ``joints.mat`` (variable ``joints``), told apart by shape:

* LSPET, ``[14, 3, N]``: x, y and a flag per joint; flag 0 = the joint was not annotated (its coordinates are then
  meaningless), 1 = annotated. Stored as v = 0 / 2.
* LSP, ``[3, 14, N]``: every joint is annotated (occluded ones included); the third row does not mark missing
  joints, so every joint is stored as labeled (v = 2).

Coordinates are MATLAB-era 1-based pixels: 1 is subtracted, as for MPII. Images are ``im%05d.jpg`` (LSPET) or
``im%04d.jpg`` (LSP), numbered from 1 in the order of ``joints.mat``.

**The split** (fixed, chosen before any method was run, the same for every experiment):

* ``eval`` (test): the last ``num_test`` images (1,000 by default: LSPET's im09001 .. im10000);
* ``labeled``: the first ``num_labeled`` training images (in file order) with at least one annotated joint;
* ``unlabeled``: every training image (the first ``N - num_test``), labeled ones included as in the reference's
  COCO setting, **with its keypoints removed from the records** (all zero), so no label can reach the unlabeled
  stream.

**The person box** (``box``), the same rule for the labeled, unlabeled and test sets, stored as every converter
stores a box (the reference's sanitation, :func:`semipose_tf.codec.sanitize_box`), and padded by the pipeline like any
box (x1.25, input aspect ratio):

* ``"joints"`` (the default): the box around the person's annotated joints, their extent x ``JOINT_BOX_SCALE``
  (1.2) + ``JOINT_BOX_MARGIN`` (8 px) in each direction, about the extent's centre (LSP's outermost joints are the
  head top, wrists and ankles: the margin takes in the hands and feet). This is the top-down setting of COCO, of the
  paper and of its anchors: every person, labeled or not, is cropped by its ground-truth box and only the keypoints
  are withheld, so unlabeled records keep this box and never the keypoints. A person with no annotated joint (none
  in LSPET, which marks at least 4 per person) gets the whole image and is counted in the manifest's
  ``stats["whole_image_boxes"]``.
* ``"image"``: the whole image ``[0, 0, width - 1, height - 1]`` for every set (the earlier LSPET tables: the
  images are person-centred, the person about 150 px tall, so about half of a crop is background).

A SavedModel sent the same box crops what evaluation scored (``joint_box`` computes it from a person's joints).
"""

from __future__ import annotations

import os

import numpy as np

from semipose_tf.conversion.sources import (
  BadInputError,
  ImageInfo,
  Problem,
  Source,
  clean_box,
  far_outside,
  image_size,
  inside,
  report_problems,
)
from semipose_tf.data.records import Instance
from semipose_tf.keypoints import LSP14, KeypointSpec

DEFAULT_NUM_TEST = 1000
BOXES = ("joints", "image")
DEFAULT_BOX = "joints"
JOINT_BOX_SCALE = 1.2
JOINT_BOX_MARGIN = 8.0


def joint_box(xy: np.ndarray, labeled: np.ndarray) -> list[float] | None:
  """The box ``[x, y, w, h]`` around a person's annotated joints (before the image's sanitation), or None.

  Args:
    xy: ``[14, 2]`` joint coordinates, 0-based pixels.
    labeled: ``[14]`` bool, which joints are annotated.

  Returns:
    The joints' extent x ``JOINT_BOX_SCALE`` + ``JOINT_BOX_MARGIN`` px in each direction, about its centre; None
    when no joint is annotated.
  """
  points = np.asarray(xy, np.float64)[np.asarray(labeled, bool)]
  if not len(points):
    return None
  low, high = points.min(0), points.max(0)
  size = (high - low) * JOINT_BOX_SCALE + JOINT_BOX_MARGIN
  corner = (low + high) / 2 - size / 2
  return [float(corner[0]), float(corner[1]), float(size[0]), float(size[1])]


def load_joints(path: str) -> tuple[np.ndarray, np.ndarray, str]:
  """``(xy [N, 14, 2] 0-based pixels, labeled [N, 14] bool, layout "lspet" | "lsp")`` from a joints.mat."""
  from scipy.io import loadmat
  from scipy.io.matlab import MatReadError

  if not os.path.exists(path):
    raise FileNotFoundError(f"LSP joints file not found: {path}")
  try:
    joints = np.asarray(loadmat(path)["joints"], np.float64)
  except KeyError:
    raise BadInputError(f"{path}: no 'joints' variable (expected LSP's or LSPET's joints.mat)") from None
  except (ValueError, TypeError, OSError, MatReadError) as e:
    raise BadInputError(f"{path}: not a readable MATLAB file ({e})") from None
  if joints.ndim == 3 and joints.shape[:2] == (14, 3):
    return joints[:, :2].transpose(2, 0, 1) - 1.0, (joints[:, 2] > 0).T, "lspet"
  if joints.ndim == 3 and joints.shape[:2] == (3, 14):
    xy = joints[:2].transpose(2, 1, 0) - 1.0
    return xy, np.ones(xy.shape[:2], bool), "lsp"
  raise BadInputError(
    f"{path}: 'joints' has shape {list(joints.shape)}; expected [14, 3, N] (LSPET) or [3, 14, N] (LSP)"
  )


def image_pattern(image_dir: str) -> str:
  """``im%05d.jpg`` (LSPET) unless the folder holds ``im0001.jpg`` and no ``im00001.jpg`` (LSP: ``im%04d.jpg``)."""
  if not os.path.isfile(os.path.join(image_dir, "im00001.jpg")) and os.path.isfile(
    os.path.join(image_dir, "im0001.jpg")
  ):
    return "im%04d.jpg"
  return "im%05d.jpg"


def load_lsp(
  joints_file: str,
  image_dir: str,
  spec: KeypointSpec = LSP14,
  skip_bad: bool = False,
  indices: range | None = None,
  joints: tuple[np.ndarray, np.ndarray, str] | None = None,
  box: str = DEFAULT_BOX,
) -> Source:
  """The people of ``joints.mat`` (one per image) as a :class:`Source`.

  Args:
    joints_file: LSP's or LSPET's ``joints.mat``.
    image_dir: Its ``images/`` folder.
    spec: A 14-keypoint spec in LSP order (``lsp14``).
    skip_bad: Skip (and list) images that are missing or whose joints are not finite, instead of stopping.
    indices: 0-based image indices to read (default: all).
    joints: What :func:`load_joints` returned for ``joints_file``, when the caller has read it already.
    box: ``"joints"`` (the box around the annotated joints) or ``"image"`` (the whole image); module docstring.

  Raises:
    BadInputError: a bad image or joint (unless ``skip_bad``), naming the image number and file.
  """
  if spec.num_keypoints != 14:
    raise ValueError(f"LSP has 14 joints; spec {spec.name!r} has {spec.num_keypoints}")
  if box not in BOXES:
    raise ValueError(f"box must be one of {', '.join(BOXES)}, got {box!r}")
  xy, labeled, layout = joints or load_joints(joints_file)
  indices = range(len(xy)) if indices is None else indices
  rule = (
    f"the annotated joints' extent x {JOINT_BOX_SCALE:g} + {JOINT_BOX_MARGIN:g} px"
    if box == "joints"
    else "the whole image"
  )
  stats = dict(
    annotations=len(indices), zero_keypoints=0, bad=0, layout=layout, box=box, box_rule=rule, whole_image_boxes=0
  )
  pattern = image_pattern(image_dir)
  items, problems = [], []
  for i in indices:
    number = i + 1
    path = inside(image_dir, pattern % number, f"{joints_file}: image {number}")
    if not os.path.isfile(path):
      problems.append(Problem(number, path, "image file not found"))
      continue
    if not np.isfinite(xy[i][labeled[i]]).all():
      problems.append(Problem(number, path, "an annotated joint has a non-finite coordinate"))
      continue
    try:
      width, height = image_size(path)
    except BadInputError as e:
      problems.append(Problem(number, path, str(e)))
      continue
    far = far_outside(xy[i], labeled[i], width, height)
    if far:
      problems.append(Problem(number, path, far))
      continue
    kps = np.zeros((14, 3), np.float32)
    kps[labeled[i], :2] = xy[i][labeled[i]]
    kps[:, 2] = np.where(labeled[i], 2.0, 0.0)
    has_labels = bool(labeled[i].any())
    stats["zero_keypoints"] += int(not has_labels)
    # The same rule for every set (module docstring), under the one box rule of every converter and of serving.
    person = joint_box(xy[i], labeled[i]) if box == "joints" else None
    if person is None:
      person = [0.0, 0.0, width, height]
      stats["whole_image_boxes"] += 1
    clean = clean_box(person, width, height)
    if clean is None:
      problems.append(
        Problem(
          number,
          path,
          f"the box around its annotated joints {[round(v, 1) for v in person]} "
          f"lies outside the {width}x{height} image",
        )
      )
      continue
    items.append(
      (
        ImageInfo(number, path, width, height),
        Instance(number, clean, kps, 1.0, float(clean[2] * clean[3])),
        has_labels,
      )
    )
  stats["bad"] = len(problems)
  report_problems(problems, skip_bad, joints_file)
  stats["labeled_candidates"] = sum(1 for it in items if it[2])
  stats["unlabeled_candidates"] = len(items)
  return Source("lsp", spec, items, [joints_file], image_dir, stats, problems)


def split(
  joints_file: str,
  image_dir: str,
  num_test: int = DEFAULT_NUM_TEST,
  spec: KeypointSpec = LSP14,
  skip_bad: bool = False,
  box: str = DEFAULT_BOX,
) -> tuple[Source, Source]:
  """``(train, test)`` sources of the fixed split: test = the last ``num_test`` images, train = the rest."""
  joints = load_joints(joints_file)
  n = len(joints[0])
  if not 0 < num_test < n:
    raise ValueError(f"--num_test must be between 1 and {n - 1} for {joints_file} ({n} images), got {num_test}")
  train = load_lsp(joints_file, image_dir, spec, skip_bad, range(0, n - num_test), joints, box)
  test = load_lsp(joints_file, image_dir, spec, skip_bad, range(n - num_test, n), joints, box)
  return train, test
