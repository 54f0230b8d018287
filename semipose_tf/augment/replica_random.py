"""Per-sample randomness that does not depend on how a batch is split across replicas.

Every per-sample draw is made for the *global* batch from the step's seed and each replica keeps its own slice.
So sample i of a global batch gets the same random numbers whether it runs on one replica or on one of several,
and no two replicas repeat each other's draws.
"""

from __future__ import annotations

import math

import tensorflow as tf

# The train step draws from a counter-based hash (murmur3's finalizer over the element index and the seed) rather
# than tf.random.stateless_*: those give different numbers for the same seed on CPU, GPU and under XLA, and a
# jit-compiled step should draw exactly what the plain one does.
ALG = "philox"  # For the few stateless TF ops kept (seed splitting), which agree across XLA.


def _fmix(x: tf.Tensor) -> tf.Tensor:
  x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 16))
  x = x * tf.constant(0x85EBCA6B, tf.uint32)
  x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 13))
  x = x * tf.constant(0xC2B2AE35, tf.uint32)
  return tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 16))


def hash_uniform(seed: tf.Tensor, shape, stream: int = 0) -> tf.Tensor:
  """float32 uniform [0, 1) of ``shape``: a pure function of (seed, stream, element index), identical on every
  device and under XLA."""
  if isinstance(shape, (list, tuple)) and not shape:
    shape = tf.zeros([0], tf.int32)
  shape = tf.reshape(tf.cast(shape, tf.int32), [-1])
  n = tf.reduce_prod(shape)
  seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
  k0 = tf.cast(tf.bitwise.bitwise_and(seed[0], 0xFFFFFFFF), tf.uint32)
  k1 = tf.cast(tf.bitwise.bitwise_and(seed[1], 0xFFFFFFFF), tf.uint32)
  k2 = tf.constant((stream * 0x27D4EB2F + 0x165667B1) & 0xFFFFFFFF, tf.uint32)
  x = tf.cast(tf.range(n), tf.uint32) * tf.constant(0x9E3779B1, tf.uint32)
  x = _fmix(tf.bitwise.bitwise_xor(x, k0))
  x = _fmix(tf.bitwise.bitwise_xor(x + k1 * tf.constant(0x85EBCA77, tf.uint32), k2))
  u = tf.cast(tf.bitwise.right_shift(x, 8), tf.float32) * (1.0 / (1 << 24))
  return tf.reshape(u, shape)


def hash_normal(seed: tf.Tensor, shape) -> tf.Tensor:
  """Standard normal of ``shape`` (Box-Muller over two hash streams)."""
  u1 = 1.0 - hash_uniform(seed, shape, stream=1)  # In (0, 1]: log is finite.
  u2 = hash_uniform(seed, shape, stream=2)
  return tf.sqrt(-2.0 * tf.math.log(u1)) * tf.cos(2.0 * math.pi * u2)


def replica_info() -> tuple[int, tf.Tensor | int]:
  """(replicas in sync, this replica's id); (1, 0) outside a distribution strategy."""
  ctx = tf.distribute.get_replica_context()
  if ctx is None:  # Cross-replica context: treat as a single replica.
    return 1, 0
  return ctx.num_replicas_in_sync, ctx.replica_id_in_sync_group


def local_slice(global_values: tf.Tensor, local_batch: tf.Tensor) -> tf.Tensor:
  """This replica's rows of a [global_batch, ...] tensor."""
  _, rid = replica_info()
  start = tf.cast(rid, tf.int32) * local_batch
  return global_values[start : start + local_batch]


def global_batch(local_batch: tf.Tensor) -> tf.Tensor:
  n, _ = replica_info()
  return local_batch * n


def _full_shape(local_batch, shape) -> tf.Tensor:
  tail = tf.zeros([0], tf.int32) if isinstance(shape, (list, tuple)) and not shape else shape
  return tf.concat([[global_batch(local_batch)], tf.reshape(tf.cast(tail, tf.int32), [-1])], 0)


def uniform(seed: tf.Tensor, local_batch: tf.Tensor, shape=(), minval=0.0, maxval=1.0) -> tf.Tensor:
  """[local_batch, *shape] float32 uniform draws, sliced from the global batch's."""
  full = minval + (maxval - minval) * hash_uniform(seed, _full_shape(local_batch, shape))
  return local_slice(full, local_batch)


def normal(seed: tf.Tensor, local_batch: tf.Tensor, shape=()) -> tf.Tensor:
  """[local_batch, *shape] float32 standard normal draws, sliced from the global batch's."""
  full = hash_normal(seed, _full_shape(local_batch, shape))
  return local_slice(full, local_batch)


def integers(seed: tf.Tensor, local_batch: tf.Tensor, shape, minval: int, maxval: int) -> tf.Tensor:
  """[local_batch, *shape] int32 draws in [minval, maxval), sliced from the global batch's."""
  u = hash_uniform(seed, _full_shape(local_batch, shape))
  full = tf.minimum(minval + tf.cast(tf.floor(u * (maxval - minval)), tf.int32), maxval - 1)
  return local_slice(full, local_batch)
