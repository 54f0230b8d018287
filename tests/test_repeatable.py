"""A deterministic `plus` run repeats bit for bit on one loaded machine (issue 36, case 8).

Under load the same seeded run drifted apart (the demo's plus phase ended at AP 0.4333 and 0.4362): Grappler,
TensorFlow's graph optimizer, rewrote the step's graph differently in different processes. With
``RuntimeConfig.deterministic`` on, a run on a CPU turns Grappler off (semipose_tf/train/determinism.py); this runs
the script twice at once beside a busy process (each run loads the other) and compares every logged value and every
weight. The network is the demo's (ResNet-18 width 16, 192x160, 12 + 12 people a step): on networks of a few
channels the differences did not show. Grappler's rewrite differed in some processes only, so one passing pair is
evidence, not proof; benchmarks/results/determinism.md has the pairs that located it.
"""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from conftest import ROOT
from test_training import NO_EVAL, data_root  # noqa: F401 - the session's COCO-format data.

DEMO_NET = [
  "INPUT_SIZE = (192, 160)",
  "DataConfig.input_size = (192, 160)",
  'build_pose_model.backbone = "resnet18"',
  "build_pose_model.width = 16",
  "build_pose_model.deconv_filters = (64, 64, 64)",
  "build_pose_model.pretrained = None",
  "DataConfig.labeled_batch_size = 12",
  "DataConfig.unlabeled_batch_size = 12",
]


def _plus_run(root, work_dir) -> subprocess.Popen:
  params = (
    DEMO_NET
    + NO_EVAL
    + [
      'MethodConfig.method = "plus"',
      "RuntimeConfig.deterministic = True",
      "RuntimeConfig.seed = 3",
      "FitConfig.epochs = 2",
      "FitConfig.steps_per_epoch = 10",
      "FitConfig.verbose = 0",
    ]
  )
  cmd = [
    sys.executable,
    os.path.join(ROOT, "scripts", "train.py"),
    "--gin_file=coco_1k.gin",
    f"--data_root={root}",
    f"--work_dir={work_dir}",
    *[f"--gin_param={p}" for p in params],
  ]
  return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _result(run: subprocess.Popen, work_dir) -> tuple[str, str, list]:
  out, err = run.communicate(timeout=1500)
  assert run.returncode == 0, err[-3000:]
  with open(os.path.join(work_dir, "history.csv")) as f:
    history = f.read()
  import semipose_tf.models  # noqa: F401 - registers the network's layers for loading.

  net = keras.models.load_model(os.path.join(work_dir, "checkpoints", "final.keras"))
  return out, history, net.get_weights()


@pytest.mark.slow
def test_a_deterministic_plus_run_repeats_beside_a_busy_process(data_root, tmp_path):  # noqa: F811
  busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])  # One core taken, as other work would.
  try:
    runs = [_plus_run(data_root, tmp_path / name) for name in ("a", "b")]  # At once: each loads the other.
    (out, first, weights), (_, second, weights_again) = [_result(r, tmp_path / n) for r, n in zip(runs, "ab")]
  finally:
    busy.kill()
    for r in locals().get("runs", []):
      r.kill()
  assert "RuntimeConfig.deterministic: op determinism, Grappler off" in out
  assert len(first.splitlines()) == 3 and "loss_u" in first and "mask_count" in first
  assert second == first  # Every logged value: losses, mask counts, mixup lambda, per epoch.
  assert len(weights) == len(weights_again)
  differing = [i for i, (a, b) in enumerate(zip(weights, weights_again)) if not np.array_equal(a, b)]
  assert not differing, f"{len(differing)} of {len(weights)} weight arrays differ"


def test_enable_on_a_cpu_turns_grappler_off_and_keeps_the_threads():
  """What determinism.enable() promises on a machine without a GPU, in a fresh process (it is process-wide)."""
  code = (
    "import tensorflow as tf\n"
    "from tensorflow.python.framework import config\n"
    "from semipose_tf.train import determinism\n"
    "assert not determinism.grappler_off()\n"
    "determinism.enable()\n"
    "gpu = bool(tf.config.list_physical_devices('GPU'))\n"
    "print(gpu, determinism.grappler_off(), tf.config.threading.get_intra_op_parallelism_threads(),"
    " config.is_op_determinism_enabled())\n"
  )
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
  r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
  assert r.returncode == 0, r.stderr[-2000:]
  assert r.stdout.split() == ["False", "True", "0", "True"], r.stdout  # 0: TensorFlow's default pool.
