#!/usr/bin/env python
"""What each deployment format costs: accuracy, keypoint agreement, file size and CPU latency, side by side.

For one trained network (.keras) and an evaluation set, exports the SavedModel, ONNX, LiteRT (float32, float16,
int8 calibrated on the first crops of the same set) and OpenVINO into a temporary folder, loads each back in its own
runtime (TensorFlow, onnxruntime, ai-edge-litert, openvino) and measures, in one process on one machine:

* the metric of the set (COCO AP and PCK@0.2 for a COCO set, PCK@0.2 for an LSP set) through
  ``scripts/evaluate.py``'s path: the same crops and the same decoding as the Keras network;
* how far each format's in-graph keypoints (crop pixels) are from the Keras network's decoded ones on those crops:
  the largest difference and the share within 0.05 px;
* the file size, and the median latency of one crop and of a batch of 32 (after warm-up).

  python benchmarks/export_formats.py --model work_dirs/demo/checkpoints/final.keras --eval_dir data/demo/val/eval
  python benchmarks/export_formats.py --model .../final.keras --eval_dir data/lspet_bench/eval --dataset lsp \\
      --out benchmarks/results/export_formats_lspet.md

Needs the deploy extra (``pip install -e '.[deploy]'``).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time

from semipose_tf.console import VERBOSE_FLAG, VERBOSE_HELP, quiet_start

quiet_start()

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

ROWS = (
  ("Keras (.keras)", None, None),
  ("SavedModel", "saved_model", "float32"),
  ("ONNX", "onnx", "float32"),
  ("LiteRT float32", "litert", "float32"),
  ("LiteRT float16", "litert", "float16"),
  ("LiteRT int8", "litert", "int8"),
  ("OpenVINO", "openvino", "float32"),
)


def _latency(fn, x, repeats: int) -> float:
  """Median seconds of ``fn(x)`` over ``repeats`` calls, after two warm-up calls."""
  import numpy as np

  fn(x)
  fn(x)
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    out = fn(x)
    np.asarray(out)  # Wait for the result.
    times.append(time.perf_counter() - t)
  return float(np.median(times))


def main() -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument(VERBOSE_FLAG, action="store_true", help=VERBOSE_HELP)
  p.add_argument("--model", required=True, help="a trained .keras pose network")
  p.add_argument("--eval_dir", required=True, help="its evaluation TFRecord set")
  p.add_argument("--dataset", choices=("coco", "lsp"), default="coco")
  p.add_argument("--calibration", type=int, default=128, help="int8: crops of the set that calibrate it")
  p.add_argument("--repeats", type=int, default=20, help="latency: timed calls per row and batch size")
  p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "export_formats.md"))
  args = p.parse_args()

  import numpy as np
  import tensorflow as tf
  from results_io import write_page

  from semipose_tf import codec, deploy
  from semipose_tf.data import pipeline
  from semipose_tf.evaluation import coco, pck
  from semipose_tf.evaluation.callback import annotation_file_of, evaluation_spec
  from semipose_tf.export import export_saved_model
  from semipose_tf.models.factory import load_network

  net = load_network(args.model, "--model")
  size = codec.HeatmapCodec.of_network(net).input_size
  spec = evaluation_spec(args.eval_dir, None, getattr(net, "keypoint_spec", None), "--model")
  data = pipeline.eval_dataset(args.eval_dir, spec, 32, pipeline.PipelineConfig.of_size(size))
  crops = np.concatenate([b["image"].numpy() for b in data])
  calibration = [crops[i : i + 8] for i in range(0, min(len(crops), args.calibration), 8)]
  keras_fn = tf.function(lambda x: net(x, training=False), reduce_retracing=True)
  reference = []
  for i in range(0, len(crops), 32):
    coords, _ = codec.decode_heatmaps(keras_fn(crops[i : i + 32]))
    reference.append(codec.HeatmapCodec.of_network(net).to_input(coords).numpy())
  reference = np.concatenate(reference)

  def score(predict) -> dict[str, float]:
    if args.dataset == "coco":
      out = coco.COCOEvaluator(annotation_file_of(args.eval_dir), data, spec)(predict)
      return {"AP": out["AP"], "PCK@0.2": out.get("PCK@0.2", float("nan"))}
    return {"PCK@0.2": pck.PCKEvaluator(args.eval_dir, data, spec)(predict)["PCK"]}

  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    for title, fmt, variant in ROWS:
      t = time.time()
      if fmt is None:
        predict, keypoints, size_b = keras_fn, None, os.path.getsize(args.model)
      elif fmt == "saved_model":
        path = os.path.join(tmp, "saved_model", "1")
        export_saved_model(net, path)
        signature = tf.saved_model.load(path).signatures["heatmaps"]
        predict = lambda x, s=signature: s(crops=tf.convert_to_tensor(x, tf.float32))["heatmaps"]  # noqa: E731
        keypoints, size_b = None, deploy.file_size(path)
      else:
        path = os.path.join(tmp, f"{fmt}_{variant}")
        deploy.export_artifact(net, path, fmt, variant, (lambda: iter(calibration)) if variant == "int8" else None)
        artifact = deploy.Artifact(path)
        predict, size_b = artifact.predict, deploy.file_size(path)
        keypoints = lambda x, a=artifact: a(x)["keypoints"]  # noqa: E731
      export_s = time.time() - t
      metrics = score(predict)
      row = {
        "title": title,
        "size_mb": size_b / 1e6,
        "export_s": export_s,
        **metrics,
        "lat1_ms": 1e3 * _latency(predict, crops[:1], args.repeats),
        "lat32_ms": 1e3 * _latency(predict, np.resize(crops, (32,) + crops.shape[1:]), args.repeats),
      }
      if keypoints is not None:  # The in-graph decoding against the Keras network's decoded keypoints.
        ours = np.concatenate([keypoints(crops[i : i + 32]) for i in range(0, len(crops), 32)])
        d = np.abs(ours - reference).max(-1)
        row.update(max_px=float(d.max()), within=float((d <= 0.05).mean() * 100))
      rows.append(row)
      print(f"{title}: " + ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "title"), flush=True)

  commit = subprocess.run(
    ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
  ).stdout.strip()
  metric_cols = ["AP", "PCK@0.2"] if args.dataset == "coco" else ["PCK@0.2"]
  head = (
    "| format | file MB | " + " | ".join(metric_cols) + " | keypoints vs Keras: max px | within 0.05 px | "
    "1 crop ms | 32 crops ms | export s |"
  )
  lines = [
    f"# Export formats: accuracy, size and CPU latency ({os.path.basename(args.model)})",
    "",
    f"`python benchmarks/export_formats.py --model {args.model} --eval_dir {args.eval_dir} --dataset "
    f"{args.dataset}` at commit {commit}, {platform.node()} ({os.cpu_count()} cores, load average "
    f"{os.getloadavg()[0]:.1f} at the end), TensorFlow "
    f"{tf.__version__}; {len(crops)} evaluation crops at {size[0]}x{size[1]}; int8 calibrated on the first "
    f"{sum(len(c) for c in calibration)} of them; latency the median of {args.repeats} calls after warm-up, "
    "every row in this one process.",
    "",
    head,
    "|" + "---|" * (len(metric_cols) + 7),
  ]
  for r in rows:
    kp = (
      f"{r['max_px']:.3g} | {r['within']:.1f}%"
      if "max_px" in r
      else "(reference) | -"
      if r["title"].startswith("Keras")
      else "(decodes in TF: same as Keras) | -"
    )
    ms = " | ".join(f"{100 * r[c] if c == 'AP' else r[c]:.2f}" for c in metric_cols)
    lines.append(
      f"| {r['title']} | {r['size_mb']:.2f} | {ms} | {kp} | {r['lat1_ms']:.1f} | {r['lat32_ms']:.0f} | "
      f"{r['export_s']:.0f} |"
    )
  metrics = (
    "AP and PCK@0.2 in percent"
    if args.dataset == "coco"
    else "PCK@0.2 (torso) in percent, on the people of the set with a torso"
  )
  lines += [
    "",
    f"{metrics}. The keypoint columns compare each format's own in-graph decoding (crop pixels) with "
    "the Keras network's heatmaps decoded by `codec.decode_heatmaps` on the same crops; a joint whose "
    "heatmap maximum moves to another pixel differs by at least one heatmap pixel (4 crop px).",
  ]
  write_page("\n".join(lines) + "\n", args.out)
  return 0


if __name__ == "__main__":
  sys.exit(main())
