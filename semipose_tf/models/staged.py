"""A functional pose model built as a chain of stage sub-models, splittable at any stage boundary.

``model(x) == tail(head(x))`` for ``head, tail = model.split(name)``: both halves are new functional models over
the model's own stage layers, so they share its weights (training either trains the model). A split point names
the stage whose *input* is cut: ``split("layer3")`` of a SimpleBaseline returns the output of layer2 from the head
and runs layer3 onwards in the tail ("before layer3" in the paper). ``"image"`` cuts before the first stage.
Features between stages are a tensor, or a list of tensors for HRNet's multi-resolution branches.
"""

from __future__ import annotations

from typing import Sequence

import keras
from keras import layers

from semipose_tf.keypoints import KeypointSpec, get_spec


class StagedPoseModel(keras.Model):
  """Base class: subclasses build ``(name, stage)`` pairs and call :meth:`_init_chain` from ``__init__``.

  A network may carry its keypoint spec (``keypoint_spec``: names, flip pairs, skeleton, sigmas); it is part of the
  config, so a saved ``.keras`` network and its SavedModel know which keypoints they predict and evaluation,
  prediction and export need no ``--spec``. A trained network also carries the method configuration of its run
  (``method_config``: :meth:`semipose_tf.method_config.MethodConfig.get_config`'s plain JSON), so the teacher
  probe and the method's pictures read the checkpoint itself, not a file beside it.
  """

  def _init_chain(
    self,
    stages: Sequence[tuple[str, keras.Model]],
    input_shape: Sequence[int],
    keypoint_spec: KeypointSpec | dict | str | None = None,
    method_config: dict | None = None,
    **kwargs,
  ):
    for side in input_shape[:2]:
      if side is not None and side % 32:
        raise ValueError(
          f"input size {tuple(input_shape[:2])}: height and width must be multiples of 32 "
          "(the network downsamples by 32 and upsamples back to 1/4)"
        )
    inputs = keras.Input(tuple(input_shape), name="image")
    x = inputs
    for _, stage in stages:
      x = stage(x)
    super().__init__(inputs=inputs, outputs=x, **kwargs)
    self.stage_names = tuple(name for name, _ in stages)
    self._keypoint_spec = None
    if keypoint_spec is not None:
      self.keypoint_spec = keypoint_spec
    self.method_config = None if method_config is None else dict(method_config)

  @property
  def keypoint_spec(self) -> KeypointSpec | None:
    """The keypoint spec of the heatmap channels, or None when the network was built without one."""
    return self._keypoint_spec

  @keypoint_spec.setter
  def keypoint_spec(self, spec: KeypointSpec | dict | str | None) -> None:
    spec = None if spec is None else get_spec(spec)
    channels = self.output_shape[-1]
    if spec is not None and spec.num_keypoints != channels:
      raise ValueError(
        f"keypoint spec {spec.name!r} has {spec.num_keypoints} keypoints but {self.name} predicts {channels} heatmaps"
      )
    self._keypoint_spec = spec

  @property
  def split_points(self) -> tuple[str, ...]:
    """Valid split names, in order: "image" then every stage name (cutting before that stage)."""
    return ("image",) + self.stage_names

  def stages(self) -> list[keras.Model]:
    return [self.get_layer(name) for name in self.stage_names]

  def split(self, point: str) -> tuple[keras.Model, keras.Model]:
    """Returns ``(head, tail)`` sharing this model's weights, with ``tail(head(x)) == model(x)``.

    Args:
      point: "image" or a stage name; the cut is at that stage's input.

    Raises:
      ValueError: unknown point, naming the valid ones.
    """
    if point not in self.split_points:
      raise ValueError(f"unknown split point {point!r} for {self.name}; valid: {list(self.split_points)}")
    index = 0 if point == "image" else self.stage_names.index(point)
    stages = self.stages()
    image = keras.Input(self.input_shape[1:], name="image")
    feats = image
    for stage in stages[:index]:
      feats = stage(feats)
    if index == 0:  # Nothing before the cut: the head is the identity.
      feats = layers.Identity(name="image_identity")(image)
    head = keras.Model(image, feats, name=f"{self.name}_head_to_{point}")
    tail_in = keras.tree.map_structure(lambda t: keras.Input(t.shape[1:], dtype=t.dtype), feats)
    out = tail_in
    for stage in stages[index:]:
      out = stage(out)
    tail = keras.Model(tail_in, out, name=f"{self.name}_from_{point}")
    return head, tail

  def head_to(self, point: str) -> keras.Model:
    """The part of the network before ``point`` (see :meth:`split`)."""
    return self.split(point)[0]

  @classmethod
  def from_config(cls, config):
    return cls(**config)

  def _base_config(self) -> dict:
    config = {
      "name": self.name,
      "trainable": self.trainable,
      "dtype": keras.dtype_policies.serialize(self.dtype_policy),
    }
    if self.keypoint_spec is not None:
      config["keypoint_spec"] = self.keypoint_spec.to_json()
    if self.method_config is not None:
      config["method_config"] = self.method_config
    return config
