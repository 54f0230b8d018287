#!/usr/bin/env python
"""The GPU check: one command that measures what a GPU user cares about, in at most 8 minutes, into one table.

  python benchmarks/gpu_check.py                  # on the GPU machine: writes benchmarks/results/gpu_check.md
  python benchmarks/gpu_check.py --smoke          # the same code path on a CPU with tiny sizes (under 2 minutes)

Parts, each in its own process with its own time cap (a part that fails or runs out of time is reported and the
next one runs):

1. ``step``: train-step images/s (labeled + unlabeled per optimizer step) of supervised, single, plus and dual at
   32 + 32, 256x192, SimpleBaseline-R18 and HRNet-W32, in float32 / mixed_float16 / mixed_bfloat16, XLA off and
   on, with the peak GPU memory of each row (``tf.config.experimental.get_memory_info``). Random batches: the
   step alone.
2. ``pipeline``: labeled and unlabeled examples/s of the input pipeline with every host core, on real images
   (``../shared/data/coco_mini`` at 256x192, ``../shared/data/lspet`` at 256x256).
3. ``fit``: ``plus`` R18 trained by ``fit`` on real LSPET data against the step alone: steps/s of each, and which
   one is the bottleneck.
4. ``mirrored``: MirroredStrategy over every visible GPU (only when there are two or more).
5. ``train``: the LSPET supervised recipe (R18, 256x256, 1,000 labels) for a fixed number of steps, then PCK@0.2
   on 500 test images, so that a GPU run also says something about accuracy.
6. ``box``: issue 34's experiment on the anchors' schedule: EfficientNet-Lite0 from its ImageNet weights, 192x192,
   each LSPET person cropped by the box around its annotated joints, 1,000 labels + the 9,000 training people
   unlabeled from step 0 (no shared start), supervised, plus and single, PCK@0.2 on the 1,000 test people per row.

Every LSPET set here is converted with person boxes (``make_tfrecords.py lsp --box joints``, the default).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("SEMIPOSE_SHARED_DATA", os.path.join(os.path.dirname(ROOT), "shared", "data"))
from results_io import checkout_env, require_checkout  # noqa: E402

from semipose_tf.console import VERBOSE_FLAG, VERBOSE_HELP, quiet_start  # noqa: E402

quiet_start()  # Before TensorFlow: the codec below imports it.
from semipose_tf.codec.geometry import DEFAULT_INPUT_SIZE  # noqa: E402  (the COCO crop, 256x192)

# name: (cap in seconds on a GPU, cap with --smoke)
# The smoke run's caps only stop a hang: on an idle 2-core machine its parts take about 30, 10, 20, 15, 12 and 60 s,
# and a busy machine (a test suite beside two benchmarks, load 12) took 4x that (the box part stopped at 240 s).
PARTS = {
  "step": (200, 600),
  "pipeline": (60, 600),
  "fit": (60, 600),
  "mirrored": (40, 600),
  "train": (100, 600),
  "box": (300, 900),
}
FULL = {
  "backbones": ("resnet18", "hrnet_w32"),
  "methods": ("supervised", "single", "plus", "dual"),
  "policies": ("float32", "mixed_float16", "mixed_bfloat16"),
  "jit": (False, True),
  "batch": 32,
  "size": DEFAULT_INPUT_SIZE,
  "width": 64,
  "steps": 10,
  "pipe_batches": 40,
  "lsp_images": 1500,
  "fit_steps": 30,
  "train_steps": 600,
  "train_labels": 1000,
  "test_images": 500,
  "lsp_size": (256, 256),
  # box: the whole LSPET split (9,000 training people, the last 1,000 the test set), the rows in this order
  # (single last: it runs if the part's time allows), 4 epochs x 400 steps of 16 + 16, Adam 1e-3, x0.1 at
  # the last epoch.
  "box_images": 10000,
  "box_test": 1000,
  "box_methods": ("supervised", "plus", "single"),
  "box_size": (192, 192),
  "box_batch": 16,
  "box_epochs": 4,
  "box_steps": 400,
  "box_pretrained": "efficientnet_lite0_imagenet",
}
# The smoke run walks every branch of the code (an SSL method, a mixed policy, XLA, two replicas) in few rows: the
# SSL method under the mixed policy in one row, XLA on the supervised step (XLA-compiling the plus step alone takes
# most of a minute on two cores).
SMOKE = {
  "backbones": ("resnet18",),
  "rows": (("plus", "mixed_bfloat16", False), ("supervised", "float32", True)),
  "mirrored_method": "supervised",
  "batch": 2,
  "size": (64, 64),
  "width": 8,
  "steps": 2,
  "pipe_batches": 3,
  "lsp_images": 60,
  "fit_steps": 3,
  "train_steps": 10,
  "train_labels": 20,
  "test_images": 20,
  "lsp_size": (64, 64),
  # The ImageNet weights' loading has its own tests (tests/test_efficientnet_lite.py); the smoke run walks
  # the part's code with random weights.
  "box_images": 60,
  "box_test": 20,
  "box_methods": ("supervised", "plus"),
  "box_size": (64, 64),
  "box_batch": 2,
  "box_epochs": 2,
  "box_steps": 2,
  "box_pretrained": None,
}


def _memory_peak_mib() -> float | None:
  import tensorflow as tf

  gpus = tf.config.list_logical_devices("GPU")
  if not gpus:
    return None
  return max(tf.config.experimental.get_memory_info(g.name)["peak"] for g in gpus) / 2**20


def _reset_memory() -> None:
  import tensorflow as tf

  for g in tf.config.list_logical_devices("GPU"):
    tf.config.experimental.reset_memory_stats(g.name)


def _ssl_model(backbone: str, method: str, policy: str, s: dict, k: int = 17, size=None):
  from train_step import build

  extra = {"width": s["width"], "deconv_filters": (s["width"] * 4,) * 3} if backbone.startswith("resnet") else {}
  return build(method, policy, backbone, size or s["size"], k, **extra)


def part_step(s: dict) -> list[dict]:
  import tensorflow as tf
  from train_step import batch, time_steps

  rows = []
  data = batch(s["batch"], s["size"])
  grid = s.get("rows") or [(m, p, j) for m in s["methods"] for p in s["policies"] for j in s["jit"]]
  for backbone in s["backbones"]:
    for method, policy, jit in grid:
      row = {"part": "step", "backbone": backbone, "method": method, "policy": policy, "jit": jit}
      try:
        _reset_memory()
        model, opt = _ssl_model(backbone, method, policy, s)
        model.compile(optimizer=opt)
        images = s["batch"] * (1 if method == "supervised" else 2)
        row["images_s"] = time_steps(tf.function(model.train_step, jit_compile=jit), data, s["steps"], images)
        row["peak_mib"] = _memory_peak_mib()
      except Exception as e:  # e.g. an op without an XLA kernel: say so, measure the rest.
        row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:100]}"
      rows.append(row)
      _emit(row)
  return rows


def _lspet_sets(tmp: str, s: dict, n: int | None = None, test: int | None = None) -> dict[str, str]:
  """LSPET's first ``n`` (``lsp_images``) images in the benchmark's split (test = the last ``test``
  (``test_images``) of them, the first ``train_labels`` labeled, every training image unlabeled), each person
  boxed by its annotated joints, converted into ``tmp``; the set folders."""
  from semipose_tf.conversion import convert, lsp

  data = os.path.join(SHARED, "lspet")
  joints = lsp.load_joints(os.path.join(data, "joints.mat"))
  n, test = n or s["lsp_images"], test or s["test_images"]
  load = lambda r: lsp.load_lsp(
    os.path.join(data, "joints.mat"),
    os.path.join(data, "images"),  # noqa: E731
    indices=r,
    joints=joints,
  )
  convert.convert(
    load(range(n - test)),
    tmp,
    ("labeled", "unlabeled"),
    num_labeled=s["train_labels"],
    verbose=False,
    strip_unlabeled=True,
  )
  convert.convert(load(range(n - test, n)), tmp, ("eval",), verbose=False)
  return {k: os.path.join(tmp, k) for k in ("labeled", "unlabeled", "eval")}


def part_pipeline(s: dict) -> list[dict]:
  from input_pipeline import measure

  from semipose_tf.conversion import convert, sources
  from semipose_tf.data import pipeline
  from semipose_tf.keypoints import COCO17, LSP14

  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    coco = os.path.join(SHARED, "coco_mini")
    src = sources.load_coco(
      os.path.join(coco, "annotations", "person_keypoints_train2017.json"), os.path.join(coco, "train2017"), COCO17
    )
    convert.convert(src, os.path.join(tmp, "coco"), ("labeled", "unlabeled"), verbose=False)
    lsp_dirs = _lspet_sets(os.path.join(tmp, "lsp"), s)
    for name, spec, dirs, size in (
      ("coco_mini", COCO17, {k: os.path.join(tmp, "coco", k) for k in ("labeled", "unlabeled")}, s["size"]),
      ("lspet", LSP14, lsp_dirs, s["lsp_size"]),
    ):
      config = pipeline.PipelineConfig.of_size(tuple(size))
      b = s["batch"]
      for stream, make in (
        ("labeled", lambda: pipeline.labeled_dataset(dirs["labeled"], spec, b, config)),
        ("unlabeled", lambda: pipeline.unlabeled_dataset(dirs["unlabeled"], spec, b, config, repeat=True)),
      ):
        row = {
          "part": "pipeline",
          "data": name,
          "stream": stream,
          "size": f"{size[0]}x{size[1]}",
          "examples_s": measure(make(), b, s["pipe_batches"], warmup=2),
        }
        rows.append(row)
        _emit(row)
  return rows


def part_fit(s: dict) -> list[dict]:
  import tensorflow as tf
  from train_step import time_steps

  from semipose_tf.method_config import MethodConfig
  from semipose_tf.train.config import DataConfig, FitConfig
  from semipose_tf.train.experiment import train

  with tempfile.TemporaryDirectory() as tmp:
    dirs = _lspet_sets(os.path.join(tmp, "lsp"), s)
    b, size = s["batch"], s["lsp_size"]
    exp = train(  # dry_run: the task built (inputs, model, strategy) without fitting.
      tmp,
      DataConfig(
        dirs["labeled"], dirs["unlabeled"], spec="lsp14", input_size=size, labeled_batch_size=b, unlabeled_batch_size=b
      ),  # fmt: skip
      MethodConfig(method="plus"),
      fit=FitConfig(steps_per_epoch=s["fit_steps"]),
      dry_run=True,
      model_fn=lambda **kw: _ssl_model("resnet18", "supervised", "float32", s, 14, size)[0].net,
    )
    exp.model.fit(exp.train_data, epochs=1, steps_per_epoch=2, verbose=0)  # Compile and warm the pipeline.
    start = time.perf_counter()
    exp.model.fit(exp.train_data, epochs=1, steps_per_epoch=s["fit_steps"], verbose=0)
    fit_rate = s["fit_steps"] / (time.perf_counter() - start)
    # The step alone: fit's own compiled function over one batch held in memory (the same element spec: no second
    # trace of the step, which was most of this part's time on a CPU).
    held = iter(
      tf.distribute.get_strategy().experimental_distribute_dataset(
        tf.data.Dataset.from_tensors(next(iter(exp.train_data))).repeat()
      )
    )
    step_rate = time_steps(lambda _: exp.model.train_function(held), None, s["fit_steps"], 1)
  bottleneck = "input pipeline" if fit_rate < 0.9 * step_rate else "train step"
  row = {
    "part": "fit",
    "fit_steps_s": fit_rate,
    "step_steps_s": step_rate,
    "bottleneck": bottleneck,
    "size": f"{size[0]}x{size[1]}",
    "batch": b,
  }
  _emit(row)
  return [row]


def part_mirrored(s: dict) -> list[dict]:
  import tensorflow as tf
  from train_step import batch, time_steps

  gpus = tf.config.list_logical_devices("GPU")
  devices = [g.name for g in gpus]
  if len(gpus) < 2:
    if not s.get("smoke"):
      row = {"part": "mirrored", "skipped": f"{len(gpus)} GPU visible (needs 2 or more)"}
      _emit(row)
      return [row]
    tf.config.set_logical_device_configuration(
      tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2
    )
    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
  strategy = tf.distribute.MirroredStrategy(devices)
  n = strategy.num_replicas_in_sync
  with strategy.scope():
    method = s.get("mirrored_method", "plus")
    model, opt = _ssl_model("resnet18", method, "float32", s)
    model.compile(optimizer=opt)
    model.optimizer.build(model.trainable_variables)  # Inside the scope, as fit does: not in a replica's cond.
  data = strategy.experimental_distribute_dataset(
    tf.data.Dataset.from_tensors(batch(s["batch"] * n, s["size"])).repeat()
  )
  it = iter(data)
  step = tf.function(lambda d: strategy.run(model.train_step, (d,)))
  images = s["batch"] * n * (1 if method == "supervised" else 2)
  rate = time_steps(
    lambda d: {"total_loss": strategy.reduce("SUM", step(next(it))["total_loss"], None)}, None, s["steps"], images
  )
  row = {"part": "mirrored", "replicas": n, "images_s": rate, "method": method}
  _emit(row)
  return [row]


def _train_scored(
  work_dir: str, dirs: dict[str, str], size, model_fn, method: str, epochs: int, steps: int, batch: int,
  learning_rate: float, lr_milestones: tuple, unlabeled: bool = False,
) -> dict:  # fmt: skip
  """One LSPET training run, then PCK on the test set: PCK@0.2, PCK@0.1, wall, size."""
  from semipose_tf.evaluation.callback import pck_eval_callback
  from semipose_tf.method_config import MethodConfig
  from semipose_tf.train.config import DataConfig, FitConfig, OptimizerConfig
  from semipose_tf.train.experiment import train

  cb = pck_eval_callback(dirs["eval"])
  start = time.perf_counter()
  data = DataConfig(dirs["labeled"], dirs["unlabeled"] if unlabeled else None, spec="lsp14", input_size=size,
                    labeled_batch_size=batch, unlabeled_batch_size=batch)  # fmt: skip
  fit = FitConfig(epochs=epochs, steps_per_epoch=steps, checkpoint_monitor="val_PCK", checkpoint_mode="max",
                  backup_every_steps=None, verbose=0)  # fmt: skip
  train(work_dir, data, MethodConfig(method=method), OptimizerConfig(learning_rate, lr_milestones), fit=fit,
        extra_callbacks=[cb], model_fn=model_fn)  # fmt: skip
  return {"PCK@0.2": cb.last["PCK@0.2"], "PCK@0.1": cb.last["PCK@0.1"], "wall_s": time.perf_counter() - start,
          "size": f"{size[0]}x{size[1]}"}  # fmt: skip


def part_train(s: dict) -> list[dict]:
  with tempfile.TemporaryDirectory() as tmp:
    dirs = _lspet_sets(os.path.join(tmp, "lsp"), s)
    size = s["lsp_size"]
    scored = _train_scored(
      os.path.join(tmp, "work"),
      dirs,
      size,
      lambda **kw: _ssl_model("resnet18", "supervised", "float32", s, 14, size)[0].net,
      method="supervised",
      epochs=1,
      steps=s["train_steps"],
      batch=s["batch"],
      learning_rate=2e-3,
      lr_milestones=(),
    )
  row = {"part": "train", "steps": s["train_steps"], "labels": s["train_labels"], **scored}
  _emit(row)
  return [row]


def part_box(s: dict) -> list[dict]:
  """Supervised, plus and single from ImageNet weights on person boxes, labeled and unlabeled from step 0."""
  from semipose_tf.models.factory import build_pose_model

  rows = []
  size, b = s["box_size"], s["box_batch"]
  with tempfile.TemporaryDirectory() as tmp:
    dirs = _lspet_sets(os.path.join(tmp, "lsp"), s, s["box_images"], s["box_test"])
    for method in s["box_methods"]:
      scored = _train_scored(
        os.path.join(tmp, method),
        dirs,
        size,
        lambda **kw: build_pose_model(
          "efficientnet_lite0", size, 14, pretrained=s["box_pretrained"], deconv_filters=(128, 128, 128)
        ),
        method=method,
        epochs=s["box_epochs"],
        steps=s["box_steps"],
        batch=b,
        learning_rate=1e-3,
        lr_milestones=(s["box_epochs"] - 1,),
        unlabeled=True,
      )
      row = {"part": "box", "method": method, "steps": s["box_epochs"] * s["box_steps"], "batch": b, **scored}
      rows.append(row)
      _emit(row)
  return rows


def _emit(row: dict) -> None:
  print("ROW " + json.dumps(row), flush=True)


def _cell(x, digits=1) -> str:
  return "-" if x is None else f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def table(rows: list[dict], failures: dict[str, str], device: str, smoke: bool) -> str:
  """One markdown page of everything measured."""
  s = SMOKE if smoke else FULL
  out = [
    f"# GPU check{' (smoke run: tiny sizes, CPU)' if smoke else ''}",
    "",
    f"Device: {device}. Command: `python benchmarks/gpu_check.py{' --smoke' if smoke else ''}`.",
    "",
    f"## Train step (random batches, {s['batch']} + {s['batch']}, {s['size'][0]}x{s['size'][1]}; "
    "images/s = labeled + unlabeled per optimizer step)",
    "",
    "| network | method | policy | XLA | images/s | peak memory MiB |",
    "|---|---|---|---|---|---|",
  ]
  for r in rows:
    if r["part"] == "step":
      value = _cell(r.get("images_s")) if "error" not in r else f"failed: {r['error']}"
      out.append(
        f"| {r['backbone']} | {r['method']} | {r['policy']} | {'on' if r['jit'] else 'off'} | {value} | "
        f"{_cell(r.get('peak_mib'), 0)} |"
      )
  out += [
    "",
    f"## Input pipeline ({os.cpu_count()} host cores, batch {s['batch']}, full augmentation + targets)",
    "",
    "| data | stream | input | examples/s |",
    "|---|---|---|---|",
  ]
  out += [
    f"| {r['data']} | {r['stream']} | {r['size']} | {_cell(r['examples_s'])} |" for r in rows if r["part"] == "pipeline"
  ]
  out += [
    "",
    "## Pipeline or step? (plus, R18, real LSPET, fit against the step alone)",
    "",
    "| input | batch | fit steps/s | step alone steps/s | bottleneck |",
    "|---|---|---|---|---|",
  ]
  out += [
    f"| {r['size']} | {r['batch']} + {r['batch']} | {_cell(r['fit_steps_s'], 2)} | "
    f"{_cell(r['step_steps_s'], 2)} | {r['bottleneck']} |"
    for r in rows
    if r["part"] == "fit"
  ]
  out += ["", "## MirroredStrategy", ""]
  for r in rows:
    if r["part"] == "mirrored":
      out.append(
        r.get("skipped")
        or f"{r['method']}, {r['replicas']} replicas: {_cell(r['images_s'])} images/s "
        "(global batch: per-replica batch x replicas)"
      )
  out += [
    "",
    "## Accuracy: LSPET supervised recipe",
    "",
    "| input | labels | steps | PCK@0.2 | PCK@0.1 | wall s |",
    "|---|---|---|---|---|---|",
  ]
  out += [
    f"| {r['size']} | {r['labels']} | {r['steps']} | {_cell(r['PCK@0.2'])} | {_cell(r['PCK@0.1'])} | "
    f"{_cell(r['wall_s'], 0)} |"
    for r in rows
    if r["part"] == "train"
  ]
  out += [
    "",
    "## Person boxes, the anchors' schedule (issue 34): Lite0 from ImageNet, labeled + unlabeled from step 0",
    "",
    f"LSPET with each person boxed by its annotated joints; {s['box_size'][0]}x{s['box_size'][1]}; "
    f"{s['box_images'] - s['box_test']:,} training people unlabeled, the first "
    f"{s['train_labels']:,} labeled; PCK@0.2 on the last {s['box_test']:,} images' scored people.",
    "",
    "| method | steps | batch | PCK@0.2 | PCK@0.1 | wall s |",
    "|---|---|---|---|---|---|",
  ]
  out += [
    f"| {r['method']} | {r['steps']} | {r['batch']} + {r['batch']} | {_cell(r['PCK@0.2'])} | "
    f"{_cell(r['PCK@0.1'])} | {_cell(r['wall_s'], 0)} |"
    for r in rows
    if r["part"] == "box"
  ]
  if failures:
    out += ["", "## Parts that did not finish", ""] + [f"- {k}: {v}" for k, v in failures.items()]
  return "\n".join(out) + "\n"


def run_part(name: str, smoke: bool, cap: float, verbose: bool) -> tuple[list[dict], str | None]:
  """Runs one part in its own process under its time cap; the rows it printed, and why it stopped if it failed."""
  cmd = [sys.executable, os.path.abspath(__file__), "--part", name] + (["--smoke"] * smoke) + ([VERBOSE_FLAG] * verbose)
  start = time.perf_counter()
  try:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=cap, env=checkout_env(ROOT))
    stdout, failure = r.stdout, None if r.returncode == 0 else (r.stderr.strip().splitlines() or ["?"])[-1][:200]
  except subprocess.TimeoutExpired as e:
    stdout = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
    failure = f"stopped at its time cap of {cap:.0f} s (the rows above it were measured)"
  rows = [json.loads(line[4:]) for line in stdout.splitlines() if line.startswith("ROW ")]
  print(
    f"  {name}: {len(rows)} rows in {time.perf_counter() - start:.0f} s" + (f"; {failure}" if failure else ""),
    flush=True,
  )
  return rows, failure


def main() -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument(VERBOSE_FLAG, action="store_true", help=VERBOSE_HELP)
  p.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU: the code path, not the numbers")
  p.add_argument("--parts", default=",".join(PARTS), help="comma-separated subset of " + ",".join(PARTS))
  p.add_argument("--out", help="markdown output (default benchmarks/results/gpu_check[_smoke].md)")
  p.add_argument("--part", help=argparse.SUPPRESS)  # Internal: run one part in this process.
  args = p.parse_args()
  require_checkout(ROOT)  # A worktree benchmark measures its own commit.
  from semipose_tf.console import quiet_start

  quiet_start()
  settings = dict(SMOKE if args.smoke else FULL, smoke=args.smoke)
  if args.part:
    import tensorflow as tf

    if args.smoke:  # The CPU, split in two so that the mirrored part runs its multi-replica code.
      tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2
      )
      tf.config.set_visible_devices([], "GPU")
    globals()[f"part_{args.part}"](settings)
    return 0
  import tensorflow as tf

  gpus = tf.config.list_physical_devices("GPU")
  names = [tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus]
  device = (
    f"{len(gpus)} x {names[0]}" if gpus else "no GPU"
  ) + f", {os.cpu_count()} host cores, TensorFlow {tf.__version__}"
  if args.smoke:
    device = f"CPU only (smoke), {os.cpu_count()} cores, TensorFlow {tf.__version__}"
  elif not gpus:
    print("warning: no GPU visible; measuring on the CPU (use --smoke for the quick code-path check)")
  print(f"GPU check on {device}", flush=True)
  rows, failures = [], {}
  for name in [n for n in args.parts.split(",") if n]:
    if name not in PARTS:
      p.error(f"unknown part {name!r}; choose from {', '.join(PARTS)}")
    part_rows, failure = run_part(name, args.smoke, PARTS[name][1 if args.smoke else 0], args.verbose)
    rows += part_rows
    if failure:
      failures[name] = failure
  out = args.out or os.path.join(ROOT, "benchmarks", "results", f"gpu_check{'_smoke' if args.smoke else ''}.md")
  from results_io import write_page

  write_page(table(rows, failures, device, args.smoke), out)
  return 0


if __name__ == "__main__":
  sys.exit(main())
