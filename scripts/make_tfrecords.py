#!/usr/bin/env python
"""Converts COCO / MPII / AI Challenger / LSP annotations or detection boxes to sharded TFRecord sets.

Examples:
  # COCO train2017: every person unlabeled, and a 1K label budget (the first 1000 labeled persons in file order):
  python scripts/make_tfrecords.py coco --annotations coco/annotations/person_keypoints_train2017.json \\
      --images coco/train2017 --out data/coco_train --sets unlabeled
  python scripts/make_tfrecords.py coco --annotations coco/annotations/person_keypoints_train2017.json \\
      --images coco/train2017 --out data/coco_1k --sets labeled --num_labeled 1000
  # COCO val2017 for evaluation:
  python scripts/make_tfrecords.py coco --annotations coco/annotations/person_keypoints_val2017.json \\
      --images coco/val2017 --out data/coco_val --sets eval
  # MPII train (all labeled) and AI Challenger as the unlabeled source:
  python scripts/make_tfrecords.py mpii --annotations mpii/annot/train.json --images mpii/images \\
      --out data/mpii --sets labeled
  python scripts/make_tfrecords.py aic --annotations aic/keypoint_train_annotations_coco.json \\
      --images aic/keypoint_train_images --out data/aic --sets unlabeled
  # LSP Extended (or LSP): the fixed split: test = the last 1,000 images, labeled = the first N training images,
  # unlabeled = every training image with its labels removed from the records; each person's box is the one
  # around its annotated joints (--box joints, the top-down default; --box image: the whole image):
  python scripts/make_tfrecords.py lsp --joints lspet/joints.mat --images lspet/images --out data/lspet \\
      --num_labeled 1000
  # Extra unlabeled persons from detection boxes:
  python scripts/make_tfrecords.py detections --detections dets.json --images coco/unlabeled2017 \\
      --image_info coco/annotations/image_info_unlabeled2017.json --score_threshold 0.5 \\
      --out data/coco_wild --sets unlabeled

Each set lands in ``<out>/<set>/`` with ``manifest.json`` (counts, sources, split, keypoint spec, skipped input).
A custom keypoint spec: define it in a gin file under a scope, which is the spec's name
(``mine/custom_spec.names = [...]``, ``mine/custom_spec.flip_pairs = [...]``), and pass
``--gin_file that.gin --spec mine`` (docs/data.md, "Your own dataset").
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import threading

from semipose_tf.console import VERBOSE_FLAG, VERBOSE_HELP, error_text, quiet_start  # noqa: E402

quiet_start()

import tensorflow as tf  # noqa: E402

from semipose_tf import configurable, keypoints  # noqa: E402
from semipose_tf.conversion import convert, lsp, sources  # noqa: E402

DEFAULT_SPEC = {"coco": "coco17", "aic": "aic14", "mpii": "mpii16", "detections": "coco17", "lsp": "lsp14"}
DEFAULT_SETS = {
  "coco": "labeled,unlabeled",
  "aic": "unlabeled",
  "mpii": "labeled",
  "detections": "unlabeled",
  "lsp": "labeled,unlabeled,eval",
}


SETS = ("labeled", "unlabeled", "eval")


def _budget(text: str) -> str:
  """--num_labeled: 'all' or a whole number of at least 1."""
  if text == "all" or (text.isdigit() and int(text) >= 1):
    return text
  raise argparse.ArgumentTypeError(f"{text!r} is not a label budget: a whole number of at least 1, or 'all'")


def parse_args(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument(VERBOSE_FLAG, action="store_true", help=VERBOSE_HELP)
  p.add_argument("source", choices=sorted(DEFAULT_SPEC), help="annotation format")
  p.add_argument("--annotations", help="keypoint json (coco, aic, mpii)")
  p.add_argument("--joints", help="lsp: joints.mat of LSP ([3, 14, N]) or LSP Extended ([14, 3, N])")
  p.add_argument("--num_test", type=int, default=1000, help="lsp: the last this many images are the test set")
  p.add_argument(
    "--box",
    choices=lsp.BOXES,
    default=lsp.DEFAULT_BOX,
    help="lsp: each person's box, the same for every set: 'joints' (default; the top-down setting: "
    "the annotated joints' extent x 1.2 + 8 px, unlabeled records keep the box, never the "
    "keypoints) or 'image' (the whole image, as the earlier LSPET tables)",
  )
  p.add_argument("--detections", help="detection json in the COCO results format (detections)")
  p.add_argument("--image_info", help="json with a COCO 'images' list naming the files of --detections")
  p.add_argument("--images", required=True, help="image folder")
  p.add_argument("--out", required=True, help="output folder; sets go to <out>/<set>/")
  p.add_argument("--sets", help="comma-separated: labeled, unlabeled, eval (default depends on the source)")
  p.add_argument("--num_labeled", type=_budget, default="all", help="label budget: a number or 'all' (default all)")
  p.add_argument(
    "--split",
    choices=("first", "random"),
    default="first",
    help="labeled split: first N in annotation order (reference) or a seeded random choice",
  )
  p.add_argument("--seed", type=int, default=0, help="seed of --split random")
  p.add_argument("--spec", help="keypoint spec name (default: the source's own)")
  p.add_argument("--score_threshold", type=float, default=0.5, help="minimum detection score (detections)")
  p.add_argument(
    "--include_unannotated",
    action="store_true",
    help="also put persons with no labeled keypoint in the unlabeled set (the reference does not)",
  )
  p.add_argument(
    "--skip_bad",
    action="store_true",
    help="skip bad annotations and images (counted, listed in the manifest) instead of stopping",
  )
  p.add_argument("--num_shards", type=int, help="shards per set (default: about 128 MB each)")
  p.add_argument("--workers", type=int, help="image reading threads (default: cores, at most 8)")
  p.add_argument("--gin_file", action="append", default=[], help="gin file(s), e.g. defining a custom spec")
  p.add_argument("--gin_param", action="append", default=[], help="gin binding(s)")
  args = p.parse_args(argv)
  unknown = [s for s in (args.sets or "").split(",") if s.strip() and s.strip() not in SETS]
  if unknown:
    p.error(f"--sets: unknown set {unknown[0]!r}; choose from {', '.join(SETS)}")
  return args


def main(argv=None) -> int:
  args = parse_args(argv)
  configurable.parse_gin(args.gin_file, args.gin_param)
  try:
    spec = keypoints.get_spec(args.spec or DEFAULT_SPEC[args.source])
  except keypoints.UnknownSpecError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  sets = [s.strip() for s in (args.sets or DEFAULT_SETS[args.source]).split(",") if s.strip()]
  num_labeled = None if args.num_labeled == "all" else int(args.num_labeled)
  from semipose_tf.train.recovery import WorkDirLock

  lock = WorkDirLock(args.out, user="conversion", option="--out")
  try:  # One converter per output folder: two would break each other's staging.
    lock.acquire()
  except (RuntimeError, OSError) as e:
    print(f"error: {_describe(e, args.out)}", file=sys.stderr)
    return 2
  # A SIGTERM (a job scheduler's stop, kill) or Ctrl-C unwinds, so the set being built aside is removed instead of
  # staying behind as a <set>.tmp-* folder; nothing of it was published. Both go through _interrupt, which lets the
  # writer stop between two images rather than inside its thread pool.
  main_thread = threading.current_thread() is threading.main_thread()
  stops = (signal.SIGTERM, signal.SIGINT)
  previous = {s: signal.signal(s, _interrupt) for s in stops} if main_thread else {}
  try:
    return _convert(args, spec, sets, num_labeled)
  except KeyboardInterrupt:
    print(f"\ninterrupted: the set being written under {args.out} was removed; sets finished before it are whole",
          file=sys.stderr)  # fmt: skip
    return 130
  finally:
    for s, handler in previous.items():
      signal.signal(s, handler)
    lock.release()


def _interrupt(signum, frame):
  if not convert.request_stop():  # While images are read in a thread pool, the writer stops at its next image.
    raise KeyboardInterrupt


def _convert(args, spec, sets, num_labeled) -> int:
  try:
    if args.source == "lsp":
      return _convert_lsp(args, spec, sets, num_labeled)
    if args.source == "detections":
      if not args.detections:
        raise SystemExit("detections: --detections is required")
      src = sources.load_detections(
        args.detections, args.images, spec, args.score_threshold, args.image_info, skip_bad=args.skip_bad
      )
    else:
      if not args.annotations:
        raise SystemExit(f"{args.source}: --annotations is required")
      if args.source == "mpii":
        src = sources.load_mpii(args.annotations, args.images, spec, skip_bad=args.skip_bad)
      else:
        src = sources.load_coco(
          args.annotations,
          args.images,
          spec,
          skip_bad=args.skip_bad,
          include_unannotated=args.include_unannotated,
          kind=args.source,
        )
    print(f"{args.source}: {src.stats}")
    for p in src.problems:
      print(f"  skipped {p}")
    manifests = convert.convert(
      src,
      args.out,
      sets,
      num_labeled=num_labeled,
      split=args.split,
      seed=args.seed,
      num_shards=args.num_shards,
      skip_bad=args.skip_bad,
      workers=args.workers,
      command=_command(),
    )
  except (sources.BadInputError, OSError, tf.errors.OpError) as e:
    print(f"error: {_describe(e, args.out)}", file=sys.stderr)
    return 2
  _report(manifests, args.out)
  return 0


def _command() -> str:
  """This conversion's command line (kept in the manifests: an error about a set says how to rebuild it)."""
  return shlex.join(["python", "scripts/make_tfrecords.py", *sys.argv[1:]])


def _describe(e: Exception, out: str = "") -> str:
  """One line: a file-system error names its path (TensorFlow's writer errors, a full disk for example, name the
  output folder: nothing of it was published); everything else says its own message."""
  if isinstance(e, OSError) and e.filename and e.strerror:
    return f"{e.strerror}: {e.filename}"
  if isinstance(e, tf.errors.OpError) or (isinstance(e, OSError) and e.strerror):
    return f"cannot write the records under {out}: {error_text(e)} (nothing was published there)"
  return str(e)


def _report(manifests: dict, out: str) -> None:
  for name, m in manifests.items():
    print(f"{name}: {m['num_instances']} instances, {m['num_images']} images -> {os.path.join(out, name)}")


def _convert_lsp(args, spec, sets, num_labeled) -> int:
  try:
    if not args.joints:
      raise SystemExit("lsp: --joints is required (joints.mat)")
    train, test = lsp.split(args.joints, args.images, args.num_test, spec, skip_bad=args.skip_bad, box=args.box)
    print(f"lsp ({train.stats['layout']}): train images {train.stats}, test images {test.stats}")
    for p in train.problems + test.problems:
      print(f"  skipped {p}")
    common = dict(num_shards=args.num_shards, skip_bad=args.skip_bad, workers=args.workers, command=_command())
    manifests = convert.convert(
      train,
      args.out,
      [s for s in sets if s != "eval"],
      num_labeled=num_labeled,
      split=args.split,
      seed=args.seed,
      strip_unlabeled=True,
      **common,
    )
    if "eval" in sets:
      manifests.update(convert.convert(test, args.out, ["eval"], **common))
  except (sources.BadInputError, OSError, ValueError, tf.errors.OpError) as e:
    print(f"error: {_describe(e, args.out)}", file=sys.stderr)
    return 2
  _report(manifests, args.out)
  return 0


if __name__ == "__main__":
  sys.exit(main())
