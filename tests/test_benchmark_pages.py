"""The benchmark pages built from kept records: the LSPET tables side by side pair the seeds and say what is missing."""

import json
import os

from conftest import ROOT, run_script


def _record(folder, method, seed, pck, probe=None, epochs=2):
  os.makedirs(folder, exist_ok=True)
  epoch = {"val_PCK@0.2": pck, **({"probe_PCK@0.2": probe} if probe is not None else {})}
  name = method if method == "burn_in" else f"{method}_seed_{seed}"
  with open(os.path.join(folder, name + ".json"), "w") as f:
    json.dump({"method": method, "seed": seed, "epochs": [{"val_PCK@0.2": 0.0}] * (epochs - 1) + [epoch]}, f)


def test_side_by_side_pairs_seeds_and_names_missing_rows(tmp_path, monkeypatch):
  monkeypatch.syspath_prepend(os.path.join(ROOT, "benchmarks"))  # results_io, as when the script runs itself.
  random, imagenet = str(tmp_path / "ssl_lspet"), str(tmp_path / "ssl_lspet_imagenet")
  for seed, (sup, plus) in enumerate([(10.0, 11.0), (12.0, 12.5)]):
    _record(random, "supervised", seed, sup, probe=11.0)
    _record(random, "plus", seed, plus, probe=13.0)
  _record(imagenet, "burn_in", 0, 27.0, probe=28.3)
  _record(imagenet, "supervised", 1, 27.0)
  _record(imagenet, "plus", 0, 28.0)  # Its seed has no supervised run: no gain to pair.
  _record(imagenet, "plus", 1, 27.5)
  out = str(tmp_path / "page.md")
  r = run_script("benchmarks/ssl_lspet_compare.py", "--records", str(tmp_path), "--out", out)
  assert r.returncode == 0, r.stderr
  rows = {line.split(" | ")[0].strip("| "): line.split(" | ")[1:] for line in open(out) if line.startswith("| ")}
  # Random: 10.5 ± 1.41 over seeds 0 and 1; the plus gains per seed +1.0 and +0.5; the teacher's probe PCK.
  assert rows["supervised"][:3] == ["11.0 ± 1.4 (2 seeds)", "-", "11%"]
  assert rows["plus"][:3] == ["11.8 ± 1.1 (2 seeds)", "+1.0 / +0.5", "13%"]
  assert rows["plus"][3:5] == ["27.8 ± 0.4 (2 seeds)", "+0.5"]  # ImageNet: only seed 1 is paired.
  assert rows["the shared start"][3] == "27.0" and rows["the shared start"][5].startswith("28%")
  assert rows["single"][0] == "not run yet" and rows["single"][3] == "not run yet"

  r = run_script("benchmarks/ssl_lspet_compare.py", "--records", str(tmp_path / "none"), "--out", out)
  assert r.returncode == 2 and "no records under" in r.stderr


def test_the_shared_start_is_kept_without_its_optimizer_and_restored_elsewhere(tmp_path, monkeypatch):
  """A table finished on another machine starts its rows from the kept weights, not from a retrained start."""
  import keras
  import numpy as np

  from semipose_tf.models.factory import build_pose_model

  monkeypatch.syspath_prepend(os.path.join(ROOT, "benchmarks"))
  from kept_start import keep_start, restore_start

  net = build_pose_model(backbone="resnet18", width=8, deconv_filters=(8,), num_keypoints=14, input_size=(64, 64))
  net.compile(optimizer=keras.optimizers.Adam(), loss="mse")
  net.optimizer.build(net.trainable_variables)  # Adam's slots, which a trained start's file carries.
  trained = tmp_path / "here" / "burn_in"
  os.makedirs(trained / "checkpoints")
  net.save(trained / "checkpoints" / "final.keras")
  records = str(tmp_path / "records")
  _record(records, "burn_in", 0, 27.0, probe=28.3)
  kept = keep_start(str(trained / "checkpoints" / "final.keras"), records)
  assert os.path.getsize(kept) < os.path.getsize(trained / "checkpoints" / "final.keras")  # No Adam slots.
  assert sorted(os.listdir(records)) == ["burn_in.json", "burn_in.keras"]  # No temporary file left beside it.
  elsewhere = str(tmp_path / "elsewhere" / "burn_in")
  assert restore_start(elsewhere, records)
  assert sorted(os.listdir(elsewhere)) == ["benchmark.json", "checkpoints"]
  assert os.listdir(os.path.join(elsewhere, "checkpoints")) == ["final.keras"]
  restored = keras.models.load_model(os.path.join(elsewhere, "checkpoints", "final.keras"))
  for a, b in zip(restored.get_weights(), net.get_weights()):
    np.testing.assert_array_equal(a, b)
  with open(os.path.join(elsewhere, "benchmark.json")) as f:
    assert json.load(f)["epochs"][-1]["val_PCK@0.2"] == 27.0
  assert not restore_start(elsewhere, records)  # A work folder with a trained start keeps it.
  assert keep_start(str(trained / "checkpoints" / "final.keras"), records) == kept


def test_the_anchors_section_lines_up_the_start_then_the_rows_beside_the_anchors(monkeypatch):
  """Epochs 1..start: the start's curve in both design columns; after it, each row's mean; the anchors' gain paired."""
  monkeypatch.syspath_prepend(os.path.join(ROOT, "benchmarks"))
  from lspet_anchors import anchors_section

  def rec(pcks, probe=None, masks=None):
    return {"epochs": [{"val_PCK@0.2": p, "probe_PCK@0.2": probe, "mask_count": masks} for p in pcks]}

  start = rec([20.0, 30.0])
  records = {
    "supervised": [rec([31.0]), rec([33.0])],
    "plus": [rec([30.0]), rec([30.5])],
    "anchor_supervised": [rec([21.0, 29.0, 32.0], probe=25.0)],
    "anchor_plus": [rec([22.0, 30.5], probe=26.0, masks=4.125)],  # Still running: its third epoch not yet.
  }
  assert anchors_section({"supervised": records["supervised"]}, start) == []  # No anchor: no section.
  rows = [line.split(" | ") for line in anchors_section(records, start) if line.startswith("| ") and line[2].isdigit()]
  assert [r[0] for r in rows] == ["| 1", "| 2", "| 3"]
  assert rows[0][1:6] == ["20.0", "20.0", "21.0", "22.0", "+1.0"]
  assert rows[2][1:6] == ["32.0", "30.2", "32.0", "-", "-"]  # The rows' means after the start; plus not there.
  assert rows[1][6:] == ["25.0", "26.0", "4.12 |"]


def test_the_confidence_table_ranks_bins_and_keeps_the_most_confident_joints(monkeypatch):
  """AUC from ranks (ties half), the fraction right per confidence bin and what a top-k filter keeps."""
  import numpy as np

  monkeypatch.syspath_prepend(os.path.join(ROOT, "benchmarks"))
  from teacher_confidence import confidence_table

  scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.3])
  correct = np.array([True, True, False, True, False, False, True, False])
  t = confidence_table(scores, correct, quantiles=4)
  # Right joints outscore wrong ones in 11.5 of the 16 pairs: 4 + 4 + 3, and the 0.3 tie counts half.
  assert t["joints"] == 8 and t["right"] == 0.5 and abs(t["auc"] - 11.5 / 16) < 1e-12
  assert t["bins"] == [0.5, 0.0, 0.5, 1.0]  # Least confident first.
  assert t["keep"][0.25] == (1.0, 0.5) and t["keep"][0.5] == (0.75, 0.75) and t["keep"][1.0] == (0.5, 1.0)
  assert np.isnan(confidence_table(scores, np.ones(8, bool))["auc"])  # No wrong joint: nothing to separate.
