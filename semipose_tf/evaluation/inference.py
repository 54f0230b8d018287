"""A network over an evaluation set: normalized crops -> heatmaps (optionally flip-tested) -> image keypoints.

COCO AP, PCK, MPII PCKh and the teacher probe all read predictions through here, so that every metric sees the
same crops, the same flip test and the same decoding (``codec.decode_to_image``).
"""

from __future__ import annotations

from typing import Callable, Iterator, Sequence

import numpy as np
import tensorflow as tf

from semipose_tf import codec
from semipose_tf.keypoints import KeypointSpec

PredictFn = Callable[[tf.Tensor], tf.Tensor]  # normalized crops [N, H, W, 3] -> heatmaps [N, h, w, K]


def predict_heatmaps(predict_fn: PredictFn, images: tf.Tensor, flip_index: Sequence[int] | None = None) -> tf.Tensor:
  """Heatmaps [N, h, w, K] of normalized crops [N, H, W, 3]; with ``flip_index``, averaged with the flipped input's
  (flip test)."""
  heatmaps = tf.convert_to_tensor(predict_fn(images), tf.float32)
  if flip_index is not None:
    flipped = tf.convert_to_tensor(predict_fn(tf.reverse(images, axis=[2])), tf.float32)
    heatmaps = 0.5 * (heatmaps + codec.flip_back(flipped, flip_index))
  return heatmaps


def predict_batches(
  predict_fn: PredictFn, dataset: tf.data.Dataset, spec: KeypointSpec | None = None, flip_test: bool = False
) -> Iterator[tuple[dict, tf.Tensor, np.ndarray, np.ndarray]]:
  """Per batch of ``pipeline.eval_dataset``: (the batch, heatmaps [N, h, w, K], keypoints [N, K, 2] in image
  pixels, scores [N, K])."""
  flip_index = None
  if flip_test:
    if spec is None:
      raise ValueError("flip test needs the keypoint spec (its flip pairs)")
    flip_index = spec.flip_index
  for batch in dataset:
    heatmaps = predict_heatmaps(predict_fn, batch["image"], flip_index)
    coords, scores = codec.decode_to_image(heatmaps, batch["center"], batch["scale"])
    yield batch, heatmaps, coords.numpy(), scores.numpy()


def predict_persons(
  predict_fn: PredictFn,
  dataset: tf.data.Dataset,
  spec: KeypointSpec | None = None,
  flip_test: bool = False,
  with_ids: bool = False,
) -> list[dict]:
  """Runs ``predict_fn`` over an evaluation dataset (``pipeline.eval_dataset``); one dict per person:
  ``image_id``, ``keypoints`` [K, 3] (x, y, score) in image pixels, ``box_score``, ``area`` (crop box area), and
  with ``with_ids`` the ``ann_id``."""
  persons = []
  for batch, _, coords, scores in predict_batches(predict_fn, dataset, spec, flip_test):
    scale = batch["scale"].numpy()
    for i, image_id in enumerate(batch["image_id"].numpy()):
      person = {
        "image_id": int(image_id),
        "keypoints": np.concatenate([coords[i], scores[i][:, None]], 1),
        "box_score": float(batch["score"][i]),
        "area": float(np.prod(scale[i] * codec.PIXEL_STD)),
      }
      if with_ids:
        person["ann_id"] = int(batch["ann_id"][i])
      persons.append(person)
  return persons


__all__ = ["PredictFn", "predict_batches", "predict_heatmaps", "predict_persons"]
