"""The teacher-student model: one network (shared weights) for the supervised, teacher and student passes.

``train_step`` reads top to bottom like the method (docs/method.md; every constant in
``semipose_tf/method_config.py``, bound in gin_configs/base/train.gin):

1. supervised pass: L_s = JointsMSE(f(x_l), H_l, w_l);
2. teacher pass on the weak views, under stop-gradient: H_t = f(x_w);
3. mask count: adaptive (Algorithm 1), fixed, or none, per the method;
4. strong branch: joint cutout at the teacher's argmax, then a random affine of the masked view and of H_t:
   L_u = JointsMSE(f(A(cutout(x_w))), A(H_t));
5. mixup branch at a location drawn from the configured set: L_m = lam MSE(f_m, H_t) + (1 - lam) MSE(f_m, H_t[perm]);
6. L = L_s + lambda_u L_u + lambda_m L_m, one optimizer update, a dict of measurements.

Losses are per-sample and averaged over the global batch, so the step is correct under MirroredStrategy and
MultiWorkerMirroredStrategy. Randomness comes from stateless seeds (base seed, step); per-sample draws are made
for the global batch and sliced per replica (see ``augment/replica_random.py``).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from semipose_tf import codec
from semipose_tf.augment import cutout, mixup, strong
from semipose_tf.augment.replica_random import ALG, hash_uniform
from semipose_tf.method_config import MethodConfig
from semipose_tf.models.staged import StagedPoseModel
from semipose_tf.train.distribute import reducible_logs
from semipose_tf.train.losses import global_average, joints_mse
from semipose_tf.train.methods import get_method


@keras.saving.register_keras_serializable(package="semipose_tf")
class SemiSupervisedPose(keras.Model):
  """Teacher-student training around a pose network; ``call`` is the network itself.

  Args:
    net: The pose network (a :class:`StagedPoseModel`).
    config: The method and every setting of the step (:class:`~semipose_tf.method_config.MethodConfig`), or a
      preset name for its defaults: supervised, pseudopose, affine, affine_mixup, single, adaptive, plus, dual,
      and the diagnostics oracle_affine, oracle_single, oracle_plus (``train/methods.py``).
    net2: The second network of ``dual``.
    frozen_teacher: The frozen supervised network of ``pseudopose``.
    seed: Base seed of the step randomness.
  """

  def __init__(
    self,
    net: StagedPoseModel,
    config: MethodConfig | str = "plus",
    net2: StagedPoseModel | None = None,
    frozen_teacher: keras.Model | None = None,
    seed: int = 0,
    **kwargs,
  ):
    super().__init__(**kwargs)
    self.method_config = MethodConfig(method=config) if isinstance(config, str) else config
    if not isinstance(self.method_config, MethodConfig):
      raise TypeError(f"SemiSupervisedPose.config must be a MethodConfig or a preset name, got {config!r}")
    self.method = get_method(self.method_config.method)
    if self.method.dual and net2 is None:
      raise ValueError("method 'dual' needs a second network (net2)")
    if self.method.teacher == "frozen" and frozen_teacher is None:
      raise ValueError("method 'pseudopose' needs a frozen supervised network (frozen_teacher)")
    self.method_config.check_network(int(net.output_shape[-1]), net.split_points, net.name, self.method.mixup)
    self.net = net
    self.net2 = net2
    self.frozen_teacher = frozen_teacher
    if frozen_teacher is not None:
      frozen_teacher.trainable = False
    # The parts the step reads, by name (the whole configuration stays in method_config).
    self.masking, self.strong = self.method_config.masking, self.method_config.strong
    self.mixing, self.loss_weights = self.method_config.mixup, self.method_config.loss
    self.seed = int(seed)
    self.geometry = codec.HeatmapCodec.of_network(net)  # Input size, heatmap size, stride: one place (codec).
    names = ["total_loss", "loss_s", "loss_u", "loss_m", "mask_count"]
    self.trackers = {n: keras.metrics.Mean(name=n) for n in names}
    self.val_tracker = keras.metrics.Mean(name="heatmap_loss")
    # Counts of samples per mask count since the last reset: a histogram over an epoch, summed over replicas.
    self.mask_count_bins = keras.Variable(
      tf.zeros([self.masking.mask_max + 1]), trainable=False, aggregation="sum", name="mask_count_bins"
    )
    self.built = True

  def get_config(self) -> dict:
    """Constructor arguments (Keras convention): the networks serialized, the method configuration, the seed."""
    nets = {"net": self.net, "net2": self.net2, "frozen_teacher": self.frozen_teacher}
    return {
      "name": self.name,
      **{k: None if v is None else keras.saving.serialize_keras_object(v) for k, v in nets.items()},
      "config": self.method_config.get_config(),
      "seed": self.seed,
    }

  @classmethod
  def from_config(cls, config: dict) -> "SemiSupervisedPose":
    config = dict(config)
    for key in ("net", "net2", "frozen_teacher"):
      if config.get(key) is not None:
        config[key] = keras.saving.deserialize_keras_object(config[key])
    config["config"] = MethodConfig.from_config(config["config"])
    return cls(**config)

  def _maybe_symbolic_build(self, iterator=None, data_batch=None):
    # Private Keras API, overridden on purpose: no public hook builds the optimizer without Keras first reducing a
    # data batch across replicas, which fails under MultiWorkerMirroredStrategy for nested (dict) batches like
    # ours. Everything but the optimizer is built in the constructor. tests/test_keras_private.py fails loudly if
    # Keras renames it or changes its arguments.
    if self.optimizer is not None and not self.optimizer.built:
      with self.distribute_strategy.scope():
        self.optimizer.build(self.trainable_variables)

  def _students(self) -> list[keras.Model]:
    return [self.net, self.net2] if self.method.dual else [self.net]

  def call(self, images, training=False):
    return self.net(images, training=training)

  @property
  def metrics(self):
    return list(self.trackers.values()) + [self.val_tracker]

  # --- The pieces of the step, in the order the step uses them. ------------------------------------------------

  def step_seeds(self) -> tf.Tensor:
    """[8, 2] stateless seeds for this step: from (seed, optimizer step), the same on every replica."""
    step = tf.cast(self.optimizer.iterations, tf.int64)
    return tf.random.experimental.stateless_split(tf.stack([tf.constant(self.seed, tf.int64), step]), 8, alg=ALG)

  def supervised_loss(self, net, labeled) -> tf.Tensor:
    return joints_mse(net(labeled["image"], training=True), labeled["heatmaps"], labeled["weights"])

  def targets(self, index: int, unlabeled: dict) -> tuple[tf.Tensor, tf.Tensor | None]:
    """What student ``index`` learns from on the unlabeled batch: (heatmaps [B, h, w, K], joint weights [B, K] or
    None for all ones). The one place that decides who teaches:

    * "shared": the student itself (shared weights), under stop-gradient, batch norm per ``teacher_bn_mode``;
    * dual: the other network (each learns from the other);
    * "frozen" (pseudopose): the separately trained supervised network, in inference mode;
    * "labels" (diagnostic): the unlabeled people's own ground truth, no network at all.
    """
    if self.method.teacher == "labels":
      if "heatmaps" not in unlabeled:
        raise ValueError(f"method {self.method.name!r} needs ground-truth targets in the unlabeled stream")
      return unlabeled["heatmaps"], unlabeled["weights"]
    if self.method.teacher == "frozen":
      return tf.stop_gradient(self.frozen_teacher(unlabeled["image"], training=False)), None
    students = self._students()
    teacher = students[len(students) - 1 - index] if self.method.dual else students[index]
    training = self.method_config.teacher_bn_mode == "train"
    return tf.stop_gradient(teacher(unlabeled["image"], training=training)), None

  def mask_count(self, heatmaps) -> tf.Tensor:
    batch = tf.shape(heatmaps)[0]
    if self.method.mask == "adaptive":
      return cutout.adaptive_mask_count(heatmaps, self.masking)
    if self.method.mask == "fixed":
      return cutout.fixed_mask_count(batch, self.masking.fixed_count)
    return tf.zeros([batch], tf.int32)

  def strong_views(self, images, heatmaps, num, seed) -> dict[str, tf.Tensor]:
    """The strong branch's views: joint cutout at the teacher's argmax, then the strong affine of the masked view
    and of the teacher heatmaps. The step, the TensorBoard pictures and ``scripts/method_figure.py`` all call it.

    Args:
      images: [B, H, W, 3] weak views.
      heatmaps: [B, h, w, K] the teacher's heatmaps of them.
      num: [B] joints to mask per sample.
      seed: [2] stateless seed.

    Returns:
      ``strong`` [B, H, W, 3] the student's input, ``targets`` [B, h, w, K] its targets, ``masked`` [B, H, W, 3]
      the weak view after cutout, ``boxes`` [B, M, 4] and ``selected`` [B, M] the cut rectangles, ``affine``
      [B, 2, 3] the strong affine in input pixels.
    """
    seeds = tf.random.experimental.stateless_split(seed, 2, alg=ALG)
    coords, _ = codec.decode_heatmaps(heatmaps)
    masked, boxes, selected = cutout.joint_cutout(images, self.geometry.to_input(coords), num, seeds[0], self.masking)
    m_in, m_hm, _ = strong.strong_affines(
      seeds[1], tf.shape(images)[0], self.geometry.input_size, self.geometry.heatmap_size, self.strong
    )
    x_s, targets = strong.apply_strong(masked, heatmaps, m_in, m_hm)
    return {"strong": x_s, "targets": targets, "masked": masked, "boxes": boxes, "selected": selected, "affine": m_in}

  def mixup_loss(self, student, images, heatmaps, seed, weights=None):
    """L_m per sample at a location drawn for this step; returns (loss [B], lambda, location index).

    ``weights`` [B, K] (None: all ones) weigh the joints of each sample's own targets (the "labels" teacher)."""
    seeds = tf.random.experimental.stateless_split(seed, 3, alg=ALG)
    locations = self.mixing.locations
    lam = mixup.sample_lambda(seeds[0], self.mixing.alpha, self.mixing.lam)
    perm = mixup.sample_permutation(seeds[1], tf.shape(images)[0])
    where = tf.minimum(tf.cast(hash_uniform(seeds[2], []) * len(locations), tf.int32), len(locations) - 1)
    pred = mixup.mixed_forward(student, images, lam, perm, where, locations)
    w_perm = None if weights is None else tf.gather(weights, perm)
    loss = lam * joints_mse(pred, heatmaps, weights) + (1 - lam) * joints_mse(pred, tf.gather(heatmaps, perm), w_perm)
    return loss, lam, where

  # --- The step. ---------------------------------------------------------------------------------------------

  def train_step(self, data):
    labeled = data["labeled"]
    seeds = self.step_seeds()
    students = self._students()
    loss_u = loss_m = counts = None
    lam, where = tf.constant(1.0), tf.constant(-1)
    with tf.GradientTape() as tape:
      # 1. Supervised pass (each network of dual).
      loss_s = tf.add_n([self.supervised_loss(n, labeled) for n in students])
      total = global_average(loss_s)
      if self.method.unlabeled:
        x_w = data["unlabeled"]["image"]
        loss_u, loss_m, all_counts = [], [], []
        for i, student in enumerate(students):
          # 2. Teacher pass, no gradient (w_t is None but for the ground-truth diagnostic).
          h_t, w_t = self.targets(i, data["unlabeled"])
          # 3. How many joints to mask.
          all_counts.append(self.mask_count(h_t))
          # 4. Strong branch: cutout + affine, against the re-warped teacher heatmaps.
          views = self.strong_views(x_w, h_t, all_counts[-1], seeds[2 * i])
          loss_u.append(joints_mse(student(views["strong"], training=True), views["targets"], w_t))
          # 5. Mixup branch.
          if self.method.mixup:
            l_m, lam, where = self.mixup_loss(student, x_w, h_t, seeds[2 * i + 1], w_t)
            loss_m.append(l_m)
        loss_u = tf.add_n(loss_u)
        loss_m = tf.add_n(loss_m) if loss_m else None
        counts = tf.concat(all_counts, 0)
        # 6. The weighted total (each term averaged over its own global batch).
        total += self.loss_weights.lambda_u * global_average(loss_u)
        if loss_m is not None:
          total += self.loss_weights.lambda_m * global_average(loss_m)
      scaled = self.optimizer.scale_loss(total)
    lr = tf.cast(self.optimizer.learning_rate, tf.float32)  # This step's rate (read before the step counts).
    variables = self.trainable_variables
    self.optimizer.apply(tape.gradient(scaled, variables), variables)
    return self._measure(total, loss_s, loss_u, loss_m, counts, lam, where, lr)

  def _measure(self, total, loss_s, loss_u, loss_m, counts, lam, where, lr):
    means = {
      k: tf.reduce_mean(v) if v is not None else tf.constant(0.0)
      for k, v in (("loss_s", loss_s), ("loss_u", loss_u), ("loss_m", loss_m))
    }
    # The loss that was differentiated. Each replica holds its share of the global-batch average (sum over its
    # samples / global batch); times the replica count it is this replica's mean, like the terms above.
    means["total_loss"] = total * tf.cast(tf.distribute.get_strategy().num_replicas_in_sync, tf.float32)
    for k, v in means.items():
      self.trackers[k].update_state(v)
    if counts is not None:
      self.trackers["mask_count"].update_state(tf.cast(counts, tf.float32))
      # one_hot + sum rather than bincount, which has no XLA kernel.
      self.mask_count_bins.assign_add(tf.reduce_sum(tf.one_hot(counts, self.masking.mask_max + 1), axis=0))
    logs = {name: t.result() for name, t in self.trackers.items()}
    logs.update(mix_lambda=tf.cast(lam, tf.float32), mix_location=tf.cast(where, tf.float32), lr=lr)
    return reducible_logs(logs)

  def test_step(self, data):
    """Validation on labeled, un-augmented examples: the heatmap loss."""
    self.val_tracker.update_state(
      joints_mse(self.net(data["image"], training=False), data["heatmaps"], data["weights"])
    )
    return reducible_logs({"heatmap_loss": self.val_tracker.result()})

  def reset_mask_histogram(self) -> list[float]:
    """Returns and clears the per-count sample tallies since the last call."""
    bins = [float(v) for v in keras.ops.convert_to_numpy(self.mask_count_bins)]
    self.mask_count_bins.assign(tf.zeros_like(self.mask_count_bins))
    return bins
