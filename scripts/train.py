#!/usr/bin/env python
"""Trains a pose network with one of the paper's methods from a gin experiment file.

  python scripts/train.py --gin_file=coco_1k.gin
  python scripts/train.py --gin_file=coco_1k.gin --gin_param='RuntimeConfig.mixed_precision="mixed_bfloat16"'
  python scripts/train.py --gin_file=mpii_aic.gin --data_root=/data/tfrecords --work_dir=work_dirs/mpii

Gin files are found in gin_configs/ without a path. The work directory (default work_dirs/<gin file name>) gets the
config, checkpoints, TensorBoard logs and a backup: running the same command again after a kill resumes.
"""

from __future__ import annotations

import argparse
import os
import sys

from semipose_tf.console import VERBOSE_FLAG, VERBOSE_HELP, quiet_start  # noqa: E402

quiet_start()


def parse_args(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument(VERBOSE_FLAG, action="store_true", help=VERBOSE_HELP)
  p.add_argument("--gin_file", action="append", default=[], help="gin experiment file(s), e.g. coco_1k.gin")
  p.add_argument("--gin_param", action="append", default=[], help="gin binding(s) overriding the files")
  p.add_argument("--work_dir", help="output directory (default: work_dirs/<first gin file name>)")
  p.add_argument("--data_root", help="folder the gin file's data paths are relative to (binds DATA_ROOT)")
  p.add_argument("--dry_run", action="store_true", help="build the datasets and model, print a summary, exit")
  p.add_argument(
    "--allow_config_change",
    action="store_true",
    help="resume a work directory's run under changed settings (its old config.gin is kept aside)",
  )
  return p.parse_args(argv)


def main(argv=None) -> int:
  args = parse_args(argv)
  if not args.gin_file:
    print("error: give an experiment with --gin_file (e.g. coco_1k.gin; see gin_configs/)", file=sys.stderr)
    return 2
  import gin

  from semipose_tf import configurable
  from semipose_tf.keypoints import UnknownSpecError
  from semipose_tf.train.experiment import TrainingDiverged

  params = list(args.gin_param)
  if args.data_root:
    params.append(f"DATA_ROOT = {args.data_root!r}")
  try:
    configurable.parse_gin(args.gin_file, params)
  except (FileNotFoundError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  if not args.dry_run:
    _announce_determinism(gin)
  work_dir = args.work_dir or os.path.join("work_dirs", os.path.splitext(os.path.basename(args.gin_file[0]))[0])
  if os.path.exists(work_dir) and not os.path.isdir(work_dir):
    print(f"error: --work_dir {work_dir} is a file, not a folder", file=sys.stderr)
    return 2
  try:
    os.makedirs(work_dir, exist_ok=True)
    probe = os.path.join(work_dir, ".write_test")
    open(probe, "w").close()
    os.remove(probe)
  except OSError as e:  # An existing file, a read-only file system, no permission.
    print(f"error: --work_dir {work_dir} cannot be used: {e.strerror or e}", file=sys.stderr)
    return 2
  from semipose_tf.train import run_config

  config = gin.config_str()
  if not args.dry_run:
    try:  # A work directory holding a run resumes it only under the same settings.
      run_config.check_resume(work_dir, config, allow_change=args.allow_config_change)
    except run_config.ConfigChanged as e:
      print(f"error: {e}", file=sys.stderr)
      return 2
  if not (args.dry_run and run_config.holds_a_run(work_dir)):  # A dry run never overwrites a run's settings.
    with open(os.path.join(work_dir, run_config.CONFIG), "w") as f:
      f.write(config)
  try:
    result = configurable.train(work_dir=work_dir, dry_run=args.dry_run, operative_config=gin.operative_config_str)
  except TrainingDiverged as e:
    print(f"error: {_message(e)}", file=sys.stderr)
    return 1
  except (FileNotFoundError, ValueError, RuntimeError, UnknownSpecError) as e:  # Bad settings, a locked work
    # dir, no readable backup or no room for one, an unknown keypoint spec.
    print(f"error: {_message(e)}", file=sys.stderr)
    return 2
  except OSError as e:  # A full disk writing a checkpoint or a log, a folder that cannot be made.
    where = f": {e.filename}" if getattr(e, "filename", None) else ""
    print(f"error: {_message(e.strerror or str(e))}{where}", file=sys.stderr)
    return 2
  except KeyboardInterrupt:  # Ctrl-C: the backups are whole; say how to go on instead of a page of traceback.
    print(
      f"\ninterrupted: {work_dir} keeps its last backup; run the same command again to resume from it",
      file=sys.stderr,
    )
    return 130
  if args.dry_run:
    exp = result
    exp.model.net.summary()
    print(
      f"method {exp.model.method.name}, {exp.steps_per_epoch} steps per epoch, "
      f"{exp.strategy.num_replicas_in_sync} replica(s); work dir {work_dir}"
    )
    return 0
  from semipose_tf.train.finish import run_summary

  print(run_summary(work_dir))
  return 0


def _announce_determinism(gin) -> None:
  """A deterministic run says what it turned on (semipose_tf/train/determinism.py): op determinism, and on a CPU
  Grappler off, whose graph rewrites differed between processes."""
  from semipose_tf.train import determinism

  try:
    deterministic = bool(gin.query_parameter("RuntimeConfig.deterministic"))
  except ValueError:  # Not bound: train()'s default.
    deterministic = False
  if deterministic:
    determinism.enable()
    grappler = "Grappler off" if determinism.grappler_off() else "Grappler on (a GPU run)"
    print(f"RuntimeConfig.deterministic: op determinism, {grappler}")


def _message(e: Exception | str) -> str:
  """The exception's own message, without the "In call to configurable ..." lines gin appends."""
  return str(e).split("\n  In call to configurable")[0]


if __name__ == "__main__":
  sys.exit(main())
