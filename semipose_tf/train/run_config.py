"""A run's saved configuration, and the check that a resumed run is the same run.

``scripts/train.py`` writes the configuration of every run (gin's ``config_str``) to ``<work_dir>/config.gin``. A
work directory that already holds a run (a backup to resume from, or a finished network) is resumed only when the
new configuration binds the same values; otherwise the differing bindings are named and the run is refused, unless
the user asks for the change (``--allow_config_change``), in which case the previous configuration is kept beside
the new one. A configuration saved before the typed configuration (``train.seed = 2``) is read under today's names
(``RuntimeConfig.seed``), and a binding one side leaves out counts as its class's default, so such a run resumes
when it binds the same values.
"""

from __future__ import annotations

import ast
import datetime
import os
import re
import shutil

from semipose_tf.train.config import default_text, modern_binding

CONFIG = "config.gin"
# Bindings that change how a run reports, not what it computes: a resume may change them freely.
HARMLESS = frozenset({"FitConfig.verbose", "FitConfig.log_every_steps", "DataConfig.conversion_hint"})
_BINDING = re.compile(r"^([A-Za-z_][\w./]*)\s*=\s*(.*)$")


class ConfigChanged(ValueError):
  """A resumed work directory whose saved configuration differs from the new one; the message names how."""


def bindings(text: str) -> dict[str, str]:
  """``{binding: value text}`` of a gin ``config_str`` (macros included; continuation lines joined)."""
  out: dict[str, str] = {}
  key = None
  for line in text.splitlines():
    if not line.strip() or line.lstrip().startswith("#"):
      key = None
      continue
    m = _BINDING.match(line)
    if m and not line[0].isspace():
      key = m.group(1)
      out[key] = m.group(2).rstrip("\\").strip()
    elif key is not None:  # A continuation of a long value.
      out[key] = (out[key] + " " + line.strip().rstrip("\\").strip()).strip()
  return out


def _modern(found: dict[str, str]) -> dict[str, str]:
  """Bindings under today's names (a configuration saved before the typed configuration binds ``train.*``)."""
  return {modern_binding(k, v): v for k, v in found.items()}


def _same(a: str | None, b: str | None) -> bool:
  """Whether two bound values are equal as values (``1e-3`` and ``0.001``), else as text."""
  if a == b:
    return True
  if a is None or b is None:
    return False
  try:
    return ast.literal_eval(a) == ast.literal_eval(b)
  except (ValueError, SyntaxError):
    return False


_STRUCTURE = {f"train.{n}": f"@{c}()" for n, c in (("data", "DataConfig"), ("optimizer", "OptimizerConfig"),
              ("runtime", "RuntimeConfig"), ("fit", "FitConfig"))}  # fmt: skip


def _default(key: str) -> str | None:
  """The default of a binding as gin writes it: a configuration class's field or one of ``train``'s own."""
  if key in _STRUCTURE:  # Configurations saved before the typed configuration made these implicitly.
    return _STRUCTURE[key]
  if key.startswith("train."):
    import inspect

    from semipose_tf.train.experiment import train

    p = inspect.signature(train).parameters.get(key[len("train.") :])
    return None if p is None or p.default is inspect.Parameter.empty else repr(p.default)
  return default_text(key)


def changed_bindings(old: str, new: str, harmless=HARMLESS) -> list[str]:
  """Human-readable differences ``"MethodConfig.method: 'plus' -> 'single'"`` between two configurations; a binding
  one side leaves out is its default there."""
  a, b = _modern(bindings(old)), _modern(bindings(new))
  changes = []
  for key in sorted(set(a) | set(b)):
    x, y = a.get(key, _default(key)), b.get(key, _default(key))
    if key in harmless or _same(x, y):
      continue
    shown = [
      v if k in side else f"{v} (default)" if v is not None else "(unset)" for side, k, v in ((a, key, x), (b, key, y))
    ]
    changes.append(f"{key}: {shown[0]} -> {shown[1]}")
  return changes


def holds_a_run(work_dir: str) -> bool:
  """Whether the work directory has training to resume (a backup) or a finished network."""
  return os.path.isdir(os.path.join(work_dir, "backup")) or os.path.exists(
    os.path.join(work_dir, "checkpoints", "final.keras")
  )


def check_resume(work_dir: str, new_config: str, allow_change: bool = False) -> None:
  """Refuses to resume a run under another configuration (or keeps the old one aside when ``allow_change``).

  Raises:
    ConfigChanged: the work directory holds a run whose saved configuration binds other values.
  """
  path = os.path.join(work_dir, CONFIG)
  if not (os.path.exists(path) and holds_a_run(work_dir)):
    return
  with open(path) as f:
    old = f.read()
  changes = changed_bindings(old, new_config)
  if not changes:
    return
  if allow_change:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    shutil.copyfile(path, os.path.join(work_dir, f"config_before_{stamp}.gin"))
    return
  shown = "; ".join(changes[:6]) + (f"; and {len(changes) - 6} more" if len(changes) > 6 else "")
  raise ConfigChanged(
    f"{work_dir} holds a run with another configuration ({len(changes)} binding(s) differ from {path}: "
    f"{shown}). Resume it with its own settings, train into a new --work_dir, or pass --allow_config_change "
    "to resume it under the new ones"
  )
