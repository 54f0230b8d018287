"""tf.data pipelines: labeled training examples, unlabeled weak views, the zipped semi-supervised stream, evaluation.

Shape of every training pipeline: shard files (shuffled with the seed each pass) -> deterministic parallel
interleave -> record shuffle -> parallel decode (one decode per image) -> one element per person -> a per-example
stateless seed ``[seed, index]`` -> parallel random affine + crop -> instance shuffle (of uint8 crops, cheap) ->
targets + normalization -> batch -> prefetch. Given the same seed a pipeline yields the same batches.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import tensorflow as tf

from semipose_tf import codec
from semipose_tf.augment.affine import WEAK, AffineAugment
from semipose_tf.data import ops, records
from semipose_tf.keypoints import KeypointSpec, get_spec

AUTOTUNE = tf.data.AUTOTUNE

LABELED_KEYS = ("image", "heatmaps", "weights")
UNLABELED_KEYS = ("image", "center", "scale", "rotation", "flip", "affine")
EVAL_KEYS = ("image", "center", "scale", "image_id", "ann_id", "score", "area")


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
  """The heatmap codec and the augmentation shared by the pipelines.

  Attributes:
    codec: Input size (256x192 for COCO, 256x256 for MPII), stride, target sigma and box padding: the one
      :class:`~semipose_tf.codec.HeatmapCodec` the step, evaluation and export read too.
    augment: The weak / labeled augmentation.
    subpixel_targets: Centre target Gaussians at the exact joint position (the reference rounds).
    record_shuffle: Shuffle buffer of serialized records (images).
    instance_shuffle: Shuffle buffer of cropped instances.
    cycle_length: Shards read in parallel.
  """

  codec: codec.HeatmapCodec = codec.HeatmapCodec()
  augment: AffineAugment = WEAK
  subpixel_targets: bool = False
  record_shuffle: int = 256
  instance_shuffle: int = 512
  cycle_length: int = 8

  @classmethod
  def of_size(cls, input_size: tuple[int, int], **settings) -> "PipelineConfig":
    """The configuration with the default codec at ``input_size`` (H, W)."""
    return cls(codec.HeatmapCodec(tuple(input_size)), **settings)

  @property
  def input_size(self) -> tuple[int, int]:
    return self.codec.input_size

  @property
  def heatmap_size(self) -> tuple[int, int]:
    return self.codec.heatmap_size


def set_spec(data_dir: str | records.RecordSet) -> KeypointSpec:
  """The keypoint spec a TFRecord set was converted with (its manifest stores it)."""
  return records.open_record_set(data_dir).spec


def open_set(data_dir: str | records.RecordSet, spec: KeypointSpec | None = None) -> tuple[list[str], int, dict]:
  """Shard paths, K and manifest of a set; with ``spec``, checks that the set holds that spec's keypoints.

  Raises:
    ValueError: the set's keypoints (count or names) differ from ``spec``'s; the message names both.
  """
  data = records.open_record_set(data_dir)
  data.check_spec(spec)
  return data.shard_paths, data.spec.num_keypoints, data.manifest


def instances(data_dir: str | records.RecordSet, *, shuffle: bool, seed: int, repeat: bool, config: PipelineConfig,
              spec: KeypointSpec | None = None) -> tf.data.Dataset:
  """One element per person instance (full decoded ``image`` + instance keys, see :func:`ops.instances`)."""
  paths, k, _ = open_set(data_dir, spec)
  files = tf.data.Dataset.from_tensor_slices(paths)
  if shuffle:
    files = files.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
  if repeat:
    files = files.repeat()
  ds = files.interleave(tf.data.TFRecordDataset, cycle_length=min(config.cycle_length, len(paths)),
                        num_parallel_calls=AUTOTUNE, deterministic=True)
  if shuffle:
    ds = ds.shuffle(config.record_shuffle, seed=seed + 1, reshuffle_each_iteration=True)
  ds = ds.map(lambda r: ops.decode_image(records.parse(r, k)), num_parallel_calls=AUTOTUNE, deterministic=True)
  return ds.flat_map(ops.instances)


def _augmented(ds: tf.data.Dataset, seed: int, config: PipelineConfig, shuffle: bool) -> tf.data.Dataset:
  """Adds center/scale, a random affine and the crop; shuffles the crops."""

  def augment(index, ex):
    ex = ops.center_scale(ex, config.codec.aspect_ratio, config.codec.padding)
    ex = ops.random_affine(ex, tf.stack([tf.constant(seed, tf.int64), index]), config.augment, config.input_size)
    return ops.crop(ex, config.input_size)

  ds = ds.enumerate().map(augment, num_parallel_calls=AUTOTUNE, deterministic=True)
  if shuffle:
    ds = ds.shuffle(config.instance_shuffle, seed=seed + 2, reshuffle_each_iteration=True)
  return ds


def _finish(ds: tf.data.Dataset, batch_size: int | None, drop_remainder: bool) -> tf.data.Dataset:
  if batch_size:
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
  options = tf.data.Options()
  options.deterministic = True
  return ds.with_options(options).prefetch(AUTOTUNE)


def labeled_dataset(data_dir: str | records.RecordSet, spec: KeypointSpec, batch_size: int | None = 32,
                    config: PipelineConfig = PipelineConfig(), seed: int = 0, repeat: bool = True,
                    shuffle: bool = True, drop_remainder: bool = True) -> tf.data.Dataset:
  """Augmented labeled examples ``{image [H, W, 3] float32, heatmaps [h, w, K], weights [K]}`` (batched)."""
  flip_index = spec.flip_index

  def targets(ex):
    ex = ops.transform_keypoints(ex, flip_index)
    ex = ops.make_targets(ex, config.codec, config.subpixel_targets)
    return ops.select(ops.normalize(ex), LABELED_KEYS)

  ds = instances(data_dir, shuffle=shuffle, seed=seed, repeat=repeat, config=config, spec=spec)
  ds = _augmented(ds, seed, config, shuffle).map(targets, num_parallel_calls=AUTOTUNE, deterministic=True)
  return _finish(ds, batch_size, drop_remainder=drop_remainder)


def unlabeled_dataset(data_dir: str | records.RecordSet, spec: KeypointSpec | None = None, batch_size: int | None = 32,
                      config: PipelineConfig = PipelineConfig(), seed: int = 0, repeat: bool = False,
                      shuffle: bool = True, keys: Sequence[str] = UNLABELED_KEYS) -> tf.data.Dataset:
  """Weak views ``{image, center, scale, rotation, flip, affine}`` (batched); labels are never read.

  ``affine`` [2, 3] maps image pixels to the weak view; with ``center``/``scale``/``rotation``/``flip`` it lets a
  caller map predictions back to the image or compose further warps. ``keys`` keeps only those (the training
  stream keeps ``image``, all the step reads, so nothing else travels to the device).
  """
  ds = instances(data_dir, shuffle=shuffle, seed=seed, repeat=repeat, config=config, spec=spec)
  ds = _augmented(ds, seed, config, shuffle)
  ds = ds.map(lambda ex: ops.select(ops.normalize(ex), keys), num_parallel_calls=AUTOTUNE, deterministic=True)
  return _finish(ds, batch_size, drop_remainder=True)


def semi_supervised_dataset(labeled_dir: str | records.RecordSet, unlabeled_dir: str | records.RecordSet, spec: KeypointSpec,
                            labeled_batch_size: int = 32, unlabeled_batch_size: int = 32,
                            config: PipelineConfig = PipelineConfig(), seed: int = 0,
                            repeat: bool = False, unlabeled_targets: bool = False) -> tf.data.Dataset:
  """``{"labeled": ..., "unlabeled": ...}`` batches; one pass over the unlabeled set is an epoch and the labeled
  set repeats to match (``repeat=True`` repeats the unlabeled set too).

  ``unlabeled_targets=True`` gives the unlabeled weak views their ground-truth ``heatmaps`` and ``weights`` as
  well (the diagnostic "labels" teacher; the unlabeled set must then hold keypoints of ``spec``)."""
  labeled = labeled_dataset(labeled_dir, spec, labeled_batch_size, config, seed=seed, repeat=True)
  if unlabeled_targets:
    unlabeled = labeled_dataset(unlabeled_dir, spec, unlabeled_batch_size, config, seed=seed + 1000003,
                                repeat=repeat)
  else:
    # The unlabeled set may hold another layout (AI Challenger for MPII): its keypoints are never read.
    unlabeled = unlabeled_dataset(unlabeled_dir, None, unlabeled_batch_size, config, seed=seed + 1000003,
                                  repeat=repeat, keys=("image",))  # All the train step reads.
  return tf.data.Dataset.zip({"labeled": labeled, "unlabeled": unlabeled}).prefetch(AUTOTUNE)


def eval_dataset(data_dir: str | records.RecordSet, spec: KeypointSpec | None = None, batch_size: int | None = 32,
                 config: PipelineConfig = PipelineConfig()) -> tf.data.Dataset:
  """Un-augmented crops in file order with what decoding needs:
  ``{image, center [2], scale [2], image_id [], ann_id [], score [] (box score), area []}``; the last batch may
  be smaller."""

  def prepare(ex):
    ex = ops.eval_crop(ex, config.codec)
    ex["image_id"], ex["ann_id"] = ex["image/id"], ex["instance/id"]
    return ops.select(ex, EVAL_KEYS)

  ds = instances(data_dir, shuffle=False, seed=0, repeat=False, config=config, spec=spec)
  ds = ds.map(prepare, num_parallel_calls=AUTOTUNE, deterministic=True)
  return _finish(ds, batch_size, drop_remainder=False)


def num_instances(data_dir: str | records.RecordSet) -> int:
  """Instances in a set, from its manifest."""
  return records.open_record_set(data_dir).num_instances


def steps_per_epoch(data_dir: str | records.RecordSet, batch_size: int) -> int:
  """Full batches in one pass over a set (the unlabeled set defines an epoch; the last partial batch is dropped)."""
  return num_instances(data_dir) // batch_size

