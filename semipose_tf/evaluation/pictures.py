"""A picture of predictions on a TFRecord set: what the demo writes and what a user looks at first."""

from __future__ import annotations

from typing import Callable

import numpy as np
import tensorflow as tf

from semipose_tf import visualize
from semipose_tf.data import pipeline, records
from semipose_tf.keypoints import KeypointSpec, get_spec

KeypointsFn = Callable[[tf.Tensor, tf.Tensor], dict]


def prediction_sheet(keypoints_fn: KeypointsFn, set_dir: str, spec: KeypointSpec | str = "coco17",
                     num_images: int = 6, columns: int = 3, threshold: float = 0.2) -> np.ndarray:
  """Draws the predicted skeletons of every person of the first images of a set and tiles the images.

  Args:
    keypoints_fn: ``(images [N] encoded bytes, boxes [N, 4] x, y, w, h) -> {"keypoints" [N, K, 2], "scores"
      [N, K]}``: an exported SavedModel's ``serving_default`` (:func:`semipose_tf.export.load_inference`) or
      :class:`semipose_tf.export.PoseInference`'s ``keypoints``.
    set_dir: A TFRecord set (an ``eval`` set: its boxes are the persons' ground-truth or detection boxes).
    spec: Keypoint spec for the skeleton and colours.
    num_images: Images to draw (fewer if the set is smaller).
    columns: Images per row.
    threshold: Joints scoring at or below it are not drawn.

  Returns:
    [rows * H, columns * W, 3] uint8, every image padded to the largest one.
  """
  spec = get_spec(spec)
  paths, k, _ = pipeline.open_set(set_dir, spec)
  drawn = []
  for rec in tf.data.TFRecordDataset(paths).take(num_images):
    ex = records.parse(rec, k)
    image = tf.io.decode_image(ex["image/encoded"], channels=3, expand_animations=False).numpy()
    boxes = ex["instance/bbox"]
    n = int(boxes.shape[0])
    if n:
      out = keypoints_fn(tf.repeat(ex["image/encoded"][None], n), boxes)
      radius = max(2, int(round(max(image.shape[:2]) / 160)))
      for kps, scores in zip(out["keypoints"].numpy(), out["scores"].numpy()):
        image = visualize.draw_keypoints(image, kps, spec, np.clip(scores, 0, 1), threshold, radius)
    drawn.append(image)
  if not drawn:
    raise ValueError(f"{set_dir} holds no images to draw")
  h = max(im.shape[0] for im in drawn)
  w = max(im.shape[1] for im in drawn)
  columns = max(1, min(columns, len(drawn)))
  rows = -(-len(drawn) // columns)
  sheet = np.zeros((rows * h, columns * w, 3), np.uint8)
  for i, im in enumerate(drawn):
    r, c = divmod(i, columns)
    sheet[r * h:r * h + im.shape[0], c * w:c * w + im.shape[1]] = im
  return sheet
