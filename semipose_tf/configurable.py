"""Gin bindings for the library, in one place: gin stays at the edges (scripts, factories).

Importing this module registers the configurables; the library itself never imports gin.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Sequence

import gin

from semipose_tf import keypoints, method_config
from semipose_tf.evaluation import callback as eval_callback
from semipose_tf.evaluation import teacher_probe
from semipose_tf.models import factory
from semipose_tf.synthetic import generate
from semipose_tf.train import config as run_config
from semipose_tf.train import experiment, teacher_student

GIN_CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "gin_configs")


def _bound(binding: str):
  try:
    return gin.query_parameter(binding)
  except ValueError:  # Not bound (gin raises ValueError for an unbound parameter or configurable).
    return None


@gin.configurable("custom_spec")
def custom_spec(
  name: str | None = None, names: Sequence[str] | None = None, flip_pairs=(), skeleton=(), sigmas=None, colors=()
) -> keypoints.KeypointSpec:
  """:func:`semipose_tf.keypoints.custom_spec` for gin.

  Scoped (``mine/custom_spec.names = [...]``, referenced as ``@mine/custom_spec()`` or by the name ``"mine"``), the
  spec is named after its scope and takes only that scope's bindings' keypoints; unscoped it needs
  ``custom_spec.name``.
  """
  scope = gin.current_scope()
  if scope:
    # Gin lets a scoped call inherit unscoped bindings; a spec defined in a scope is that scope's alone.
    path = "/".join(scope)
    name = _bound(f"{path}/custom_spec.name") or scope[-1]
    if _bound(f"{path}/custom_spec.names") is None:
      names = None
  if name is None:
    raise ValueError(
      "custom_spec needs a name: scope its bindings (mine/custom_spec.names = [...]) or bind custom_spec.name"
    )
  if names is None:
    raise ValueError(f"keypoint spec {name!r}: bind {name}/custom_spec.names = [...] (one name per keypoint)")
  return keypoints.custom_spec(name, names, flip_pairs, skeleton, sigmas, colors)


build_pose_model = gin.external_configurable(factory.build_pose_model, "build_pose_model")
SemiSupervisedPose = gin.external_configurable(teacher_student.SemiSupervisedPose, "SemiSupervisedPose")
# The method's settings (semipose_tf/method_config.py), bound by their class names: Masking.mask_max = 12.
MethodConfig = gin.external_configurable(method_config.MethodConfig, "MethodConfig")
Masking = gin.external_configurable(method_config.Masking, "Masking")
StrongView = gin.external_configurable(method_config.StrongView, "StrongView")
Mixup = gin.external_configurable(method_config.Mixup, "Mixup")
LossWeights = gin.external_configurable(method_config.LossWeights, "LossWeights")
# The run's typed configuration (semipose_tf/train/config.py), bound by class name: RuntimeConfig.seed = 2.
DataConfig = gin.external_configurable(run_config.DataConfig, "DataConfig")
OptimizerConfig = gin.external_configurable(run_config.OptimizerConfig, "OptimizerConfig")
RuntimeConfig = gin.external_configurable(run_config.RuntimeConfig, "RuntimeConfig")
FitConfig = gin.external_configurable(run_config.FitConfig, "FitConfig")
train = gin.external_configurable(experiment.train, "train")
evaluation_callback = gin.external_configurable(eval_callback.evaluation_callback, "evaluation_callback")
coco_eval_callback = gin.external_configurable(eval_callback.coco_eval_callback, "coco_eval_callback")
mpii_eval_callback = gin.external_configurable(eval_callback.mpii_eval_callback, "mpii_eval_callback")
pck_eval_callback = gin.external_configurable(eval_callback.pck_eval_callback, "pck_eval_callback")
teacher_probe_callback = gin.external_configurable(teacher_probe.teacher_probe_callback, "teacher_probe_callback")
prepare_synthetic_data = gin.external_configurable(generate.prepare, "prepare_synthetic_data")


def _names(fn) -> list[str]:
  import inspect

  return [n for n in inspect.signature(fn).parameters if n not in ("self", "work_dir")]


# What each configurable of the run takes, for the one-line error on a misspelt binding.
_PARAMETERS = {
  "train": _names(experiment.train),
  **{c.__name__: _names(c) for c in (run_config.DataConfig, run_config.OptimizerConfig, run_config.RuntimeConfig,
                                     run_config.FitConfig, method_config.MethodConfig, method_config.Masking,
                                     method_config.StrongView, method_config.Mixup, method_config.LossWeights)},
}  # fmt: skip


def find_gin_file(name: str) -> str:
  """Returns ``name`` if it exists, else ``gin_configs/<name>``; a clear error when neither does."""
  for candidate in (name, os.path.join(GIN_CONFIG_DIR, name)):
    if os.path.isfile(candidate):
      # Absolute, so that gin's own lookup (gin_configs/ first) finds it at once instead of logging a miss.
      return os.path.abspath(candidate)
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
  params = [_modern_param(p) for p in params]
  try:
    gin.parse_config_files_and_bindings([find_gin_file(f) for f in files], params)
  except ValueError as e:  # A binding of the flat layout before the typed configuration: say its new name.
    m = re.search(r"Configurable '(\w+)' doesn't have a parameter named '(\w+)'", str(e))
    if not m:
      raise
    key = f"{m.group(1)}.{m.group(2)}"
    where = re.search(r'In (?:file "([^"]*)",|bindings string) line (\d+)', str(e))
    at = f" ({where.group(1) or 'a --gin_param'}, line {where.group(2)})" if where else ""
    if run_config.modern_binding(key) != key:
      raise ValueError(
        f"{key}{at} is now {run_config.modern_binding(key)}: bind that name (the typed configuration, "
        "semipose_tf/train/config.py)"
      ) from None
    takes = _PARAMETERS.get(m.group(1))
    raise ValueError(
      f"unknown parameter {key}{at}" + (f"; {m.group(1)} takes: {', '.join(takes)}" if takes else "")
    ) from None
  except SyntaxError as e:  # gin's message spans lines and says "malformed node"; say which binding and why.
    where = f"{e.filename}:{e.lineno}" if e.filename and e.filename != "<string>" else "a --gin_param"
    text = (e.text or "").strip()
    hint = ' (strings need quotes: MethodConfig.method = "plus")' if "Failed to parse token" in str(e) else ""
    raise ValueError(f"gin syntax error in {where}: {text or e.msg}{hint}") from None


def _modern_param(param: str) -> str:
  """A --gin_param of the flat layout (``train.seed=2``) under its typed name (``RuntimeConfig.seed=2``), with a
  note, so that commands written before the typed configuration keep working."""
  key, eq, value = param.partition("=")
  new = run_config.modern_binding(key.strip(), value)
  if not eq or new == key.strip():
    return param
  print(f"note: {key.strip()} is now {new}; read as that", file=sys.stderr)
  return f"{new} ={value}"


def spec_from_gin(name: str) -> keypoints.KeypointSpec | None:
  """The spec gin defines for ``name`` with ``custom_spec``, or None.

  Either scoped by the name (``mine/custom_spec.names = [...]``) or unscoped with ``custom_spec.name = "mine"``.
  Registered as a resolver of :func:`semipose_tf.keypoints.get_spec`, so that every ``spec`` argument
  (``DataConfig.spec``, the evaluation callbacks, the scripts' ``--spec``) finds gin-defined specs by name.
  """
  if _bound(f"{name}/custom_spec.names") is not None:
    with gin.config_scope(name):
      return custom_spec(name=name)
  if _bound("custom_spec.name") == name and _bound("custom_spec.names") is not None:
    return custom_spec()
  return None


keypoints.add_resolver(spec_from_gin)
