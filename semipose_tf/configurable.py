"""Gin bindings for the library, in one place: gin stays at the edges (scripts, factories).

Importing this module registers the configurables; the library itself never imports gin.
"""

from __future__ import annotations

import os
from typing import Sequence

import gin

from semipose_tf import keypoints
from semipose_tf.data import synthetic_coco
from semipose_tf.evaluation import callback as eval_callback
from semipose_tf.models import factory
from semipose_tf.train import experiment, teacher_student

GIN_CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "gin_configs")

custom_spec = gin.external_configurable(keypoints.custom_spec, "custom_spec")
build_pose_model = gin.external_configurable(factory.build_pose_model, "build_pose_model")
SemiSupervisedPose = gin.external_configurable(teacher_student.SemiSupervisedPose, "SemiSupervisedPose")
train = gin.external_configurable(experiment.train, "train")
coco_eval_callback = gin.external_configurable(eval_callback.coco_eval_callback, "coco_eval_callback")
mpii_eval_callback = gin.external_configurable(eval_callback.mpii_eval_callback, "mpii_eval_callback")
prepare_synthetic_data = gin.external_configurable(synthetic_coco.prepare, "prepare_synthetic_data")


def find_gin_file(name: str) -> str:
  """Returns ``name`` if it exists, else ``gin_configs/<name>``; a clear error when neither does."""
  for candidate in (name, os.path.join(GIN_CONFIG_DIR, name)):
    if os.path.isfile(candidate):
      return candidate
  raise FileNotFoundError(f"gin file {name!r} not found (looked in the current directory and {GIN_CONFIG_DIR})")


def parse_gin(files: Sequence[str] = (), params: Sequence[str] = ()) -> None:
  """Parses gin files (found in ``gin_configs/`` without a path; includes resolve there too) and bindings."""
  if not files and not params:
    return
  # Search gin_configs/ first: includes like 'base/train.gin' then resolve without gin logging a failed lookup in
  # the current directory as an error. (gin has no public way to prepend a search path.)
  prefixes = getattr(gin.config, "_LOCATION_PREFIXES", None)
  if prefixes is not None and GIN_CONFIG_DIR not in prefixes:
    prefixes.insert(0, GIN_CONFIG_DIR)
  elif prefixes is None:
    gin.add_config_file_search_path(GIN_CONFIG_DIR)
  gin.parse_config_files_and_bindings([find_gin_file(f) for f in files], list(params))


def resolve_spec(name: str) -> keypoints.KeypointSpec:
  """A built-in or registered spec by name, else the one gin defines with ``custom_spec`` for that name.

  In gin, either unscoped (``custom_spec.name = "mine"``, ``custom_spec.names = [...]``) or scoped by the name
  (``mine/custom_spec.names = [...]``).
  """
  try:
    return keypoints.get_spec(name)
  except KeyError as unknown:
    try:
      with gin.config_scope(name):
        spec = custom_spec(name=name)
    except TypeError as e:  # custom_spec() missing `names`: gin defines no such spec.
      raise KeyError(f"{unknown.args[0]}; gin defines no custom_spec for {name!r} ({e})") from None
    return spec
