"""A picture of predictions on a TFRecord set: what the demo writes and what a user looks at first."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

from semipose_tf import codec, visualize
from semipose_tf.data import pipeline, records
from semipose_tf.keypoints import KeypointSpec, get_spec

KeypointsFn = Callable[[tf.Tensor, tf.Tensor], dict]


def prediction_sheet(
  keypoints_fn: KeypointsFn,
  set_dir: str,
  spec: KeypointSpec | str = "coco17",
  num_images: int = 6,
  columns: int = 3,
  threshold: float = 0.2,
) -> np.ndarray:
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
  return tile(drawn, columns)


def tile(drawn: list[np.ndarray], columns: int) -> np.ndarray:
  """Tiles images [H_i, W_i, 3] row by row, each padded (black) to the largest one."""
  h = max(im.shape[0] for im in drawn)
  w = max(im.shape[1] for im in drawn)
  columns = max(1, min(columns, len(drawn)))
  rows = -(-len(drawn) // columns)
  sheet = np.zeros((rows * h, columns * w, 3), np.uint8)
  for i, im in enumerate(drawn):
    r, c = divmod(i, columns)
    sheet[r * h : r * h + im.shape[0], c * w : c * w + im.shape[1]] = im
  return sheet


def comparison_sheet(
  networks: dict[str, Callable],
  set_dir: str,
  spec: KeypointSpec | str,
  input_size: Sequence[int],
  image_ids: Sequence[int],
  min_size: int = 256,
  ground_truth: bool = True,
) -> tuple[np.ndarray, list[str]]:
  """The same images through several networks, side by side: one row per image, one column per network (and a
  first column with the ground truth), every skeleton drawn on its person.

  Args:
    networks: ``{column title: predict function}``, each mapping normalized crops [N, H, W, 3] to heatmaps.
    set_dir: An evaluation TFRecord set (its boxes crop the people, its labels are the ground-truth column).
    spec: Keypoint spec.
    input_size: (H, W) the networks take.
    image_ids: Which images of the set (``image/id``), in row order.
    min_size: Enlarge each picture so its longer side is at least this (skeletons stay legible).
    ground_truth: Add the annotated joints as the first column.

  Returns:
    The sheet [rows * H, columns * W, 3] uint8 and the column titles.
  """
  spec = get_spec(spec)
  config = pipeline.PipelineConfig.of_size(tuple(input_size))
  wanted = {int(i) for i in image_ids}
  people = [b for b in pipeline.eval_dataset(set_dir, spec, 1, config) if int(b["image_id"][0]) in wanted]
  images = {}
  paths, k, _ = pipeline.open_set(set_dir, spec)
  for rec in tf.data.TFRecordDataset(paths):
    ex = records.parse(rec, k)
    if int(ex["image/id"]) in wanted:
      images[int(ex["image/id"])] = (ex["image/encoded"], ex["instance/keypoints"].numpy())
  titles = (["ground truth"] if ground_truth else []) + list(networks)
  rows = []
  for image_id in image_ids:
    batch = next(b for b in people if int(b["image_id"][0]) == int(image_id))
    encoded, truth = images[int(image_id)]
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False).numpy()
    zoom = max(1, int(np.ceil(min_size / max(image.shape[:2]))))
    big = np.repeat(np.repeat(image, zoom, 0), zoom, 1)
    radius = max(2, int(round(max(big.shape[:2]) / 100)))
    if ground_truth:
      rows.append(
        visualize.draw_keypoints(big, truth[0, :, :2] * zoom, spec, (truth[0, :, 2] > 0).astype(float), 0.5, radius)
      )
    for predict in networks.values():
      coords, scores = codec.decode_to_image(predict(batch["image"]), batch["center"], batch["scale"])
      rows.append(
        visualize.draw_keypoints(big, coords.numpy()[0] * zoom, spec, np.ones(spec.num_keypoints), 0.5, radius)
      )
  return tile(rows, len(titles)), titles
