import numpy as np
import pytest

from semipose_tf import codec
from semipose_tf.augment.affine import NONE
from semipose_tf.conversion import convert, sources
from semipose_tf.data import pipeline, records
from semipose_tf.keypoints import COCO17, MPII16

SMALL = pipeline.PipelineConfig.of_size((64, 48), record_shuffle=16, instance_shuffle=16)


@pytest.fixture(scope="session")
def synthetic_sets(synthetic_coco, tmp_path_factory):
  ann, images = synthetic_coco
  out = str(tmp_path_factory.mktemp("sets"))
  src = sources.load_coco(ann, images, COCO17)
  convert.convert(src, out, ("labeled", "unlabeled", "eval"), num_labeled=6, num_shards=2, verbose=False)
  return out, src


def _take(ds, n):
  return [{k: v.numpy() for k, v in b.items()} for b in ds.take(n)]


def test_labeled_batches(synthetic_sets):
  out, _ = synthetic_sets
  b = _take(pipeline.labeled_dataset(f"{out}/labeled", COCO17, 4, SMALL, seed=0), 1)[0]
  assert b["image"].shape == (4, 64, 48, 3) and b["image"].dtype == np.float32
  assert b["heatmaps"].shape == (4, 16, 12, 17) and b["weights"].shape == (4, 17)
  assert -2.2 < b["image"].min() and b["image"].max() < 2.7  # ImageNet-normalized.
  assert set(np.unique(b["weights"])) <= {0.0, 1.0} and b["weights"].sum() > 0


def test_deterministic_given_seed(synthetic_sets):
  out, _ = synthetic_sets
  a = _take(pipeline.labeled_dataset(f"{out}/labeled", COCO17, 4, SMALL, seed=5), 4)
  b = _take(pipeline.labeled_dataset(f"{out}/labeled", COCO17, 4, SMALL, seed=5), 4)
  c = _take(pipeline.labeled_dataset(f"{out}/labeled", COCO17, 4, SMALL, seed=6), 4)
  for x, y in zip(a, b):
    for k in x:
      np.testing.assert_array_equal(x[k], y[k])
  assert any(not np.array_equal(x["image"], z["image"]) for x, z in zip(a, c))


def test_labeled_set_repeats_and_epochs_differ(synthetic_sets):
  out, _ = synthetic_sets
  ds = pipeline.labeled_dataset(f"{out}/labeled", COCO17, 6, SMALL, seed=1)
  b = _take(ds, 3)  # 6 labeled instances: every batch is one pass, each with fresh augmentation.
  assert not np.array_equal(b[0]["image"], b[1]["image"])


def test_unlabeled_weak_views_carry_geometry(synthetic_sets):
  out, src = synthetic_sets
  ds = pipeline.unlabeled_dataset(f"{out}/unlabeled", COCO17, 4, SMALL, seed=2)
  batches = _take(ds, 100)
  assert sum(len(b["image"]) for b in batches) == (len(src.items) // 4) * 4  # One pass, remainder dropped.
  b = batches[0]
  assert set(b) == set(pipeline.UNLABELED_KEYS)
  m = codec.crop_affine(b["center"], b["scale"], b["rotation"], (64, 48), b["flip"]).numpy()
  np.testing.assert_allclose(b["affine"], m, atol=1e-4)
  flips = np.concatenate([x["flip"] for x in batches])
  assert 0 < flips.mean() < 1


def test_semi_supervised_zip(synthetic_sets):
  out, src = synthetic_sets
  ds = pipeline.semi_supervised_dataset(f"{out}/labeled", f"{out}/unlabeled", COCO17, 4, 3, SMALL, seed=0)
  batches = list(ds)
  assert len(batches) == len(src.items) // 3  # An epoch is one pass over the unlabeled set.
  assert batches[0]["labeled"]["image"].shape[0] == 4 and batches[0]["unlabeled"]["image"].shape[0] == 3
  assert pipeline.steps_per_epoch(f"{out}/unlabeled", 3) == len(batches)


def test_eval_dataset_metadata_and_targets_line_up(synthetic_sets):
  """Eval crops + the labeled targets of the same crop decode back to the ground truth in image pixels."""
  out, src = synthetic_sets
  ev = list(pipeline.eval_dataset(f"{out}/eval", COCO17, 5, SMALL))
  n = sum(len(b["ann_id"]) for b in ev)
  assert n == sum(1 for it in src.items if it[2])
  gt = {inst.ann_id: inst for _, inst, has in src.items if has}
  b = ev[0]
  assert set(b) == set(pipeline.EVAL_KEYS)
  # Un-augmented labeled pipeline in file order gives the targets of the same crops.
  cfg = pipeline.PipelineConfig.of_size((64, 48), augment=NONE)
  lab = next(iter(pipeline.labeled_dataset(f"{out}/eval", COCO17, 5, cfg, shuffle=False, repeat=False)))
  np.testing.assert_allclose(lab["image"].numpy(), b["image"].numpy(), atol=1e-5)
  kps, _ = codec.decode_to_image(lab["heatmaps"], b["center"], b["scale"])
  for i, ann_id in enumerate(b["ann_id"].numpy()):
    inst = gt[int(ann_id)]
    w = lab["weights"].numpy()[i] > 0
    px = float(b["scale"][i, 0]) * 200 / 12  # Image pixels per heatmap pixel.
    err = np.abs(kps.numpy()[i][w] - inst.keypoints[w, :2])
    assert err.max() <= 0.5 * px + 1e-2


def test_spec_mismatch_and_missing_set(synthetic_sets, tmp_path):
  out, _ = synthetic_sets
  with pytest.raises(
    ValueError,
    match=r"holds keypoint spec 'coco17' \(17 keypoints\), the configured spec is "
    r"'mpii16' \(16 keypoints\): set DataConfig.spec",
  ):
    pipeline.labeled_dataset(f"{out}/labeled", MPII16)
  # Same count, other names (AI Challenger vs LSP, both 14): refused too, naming both.
  import training_data

  from semipose_tf.keypoints import AIC14, LSP14

  training_data.write_set(str(tmp_path / "aic"), "labeled", AIC14, num_images=1)
  with pytest.raises(ValueError, match="holds keypoint spec 'aic14'.*'lsp14'"):
    pipeline.labeled_dataset(str(tmp_path / "aic"), LSP14)
  with pytest.raises(records.IncompleteSetError, match="make_tfrecords"):
    pipeline.labeled_dataset(str(tmp_path / "nothing"), COCO17)


def test_a_record_set_reads_its_manifest_once_for_every_reader(synthetic_sets, monkeypatch):
  """The handle the Task and the evaluators pass along: the pipeline, the counts and the spec check share one read."""
  out, src = synthetic_sets
  reads = []
  real = records.read_manifest
  monkeypatch.setattr(records, "read_manifest", lambda d: reads.append(d) or real(d))
  data = records.RecordSet(f"{out}/eval")
  assert pipeline.set_spec(data).names == COCO17.names
  assert pipeline.num_instances(data) == data.num_instances == len(src.items)
  assert pipeline.steps_per_epoch(data, 4) == len(src.items) // 4
  _take(pipeline.eval_dataset(data, COCO17, 4, SMALL), 1)
  _take(pipeline.labeled_dataset(data, COCO17, 4, SMALL, seed=0), 1)
  assert reads == [f"{out}/eval"]
  assert records.open_record_set(data) is data and str(data) == f"{out}/eval"
  with pytest.raises(ValueError, match="holds keypoint spec 'coco17'"):
    data.check_spec(MPII16)
  # A folder given as a string is a new handle each time: read again (the case the handle is for).
  pipeline.num_instances(f"{out}/eval")
  assert len(reads) == 2


def test_coco_mini_pipeline(coco_mini_sets):
  """Real JPEGs (grayscale and odd sizes among them) through every pipeline."""
  lab = next(iter(pipeline.labeled_dataset(f"{coco_mini_sets}/labeled", COCO17, 8, seed=0)))
  assert lab["image"].shape == (8, 256, 192, 3) and lab["heatmaps"].shape == (8, 64, 48, 17)
  assert np.isfinite(lab["image"].numpy()).all()
  ev = list(pipeline.eval_dataset(f"{coco_mini_sets}/unlabeled", COCO17, 32))
  assert sum(len(b["image_id"]) for b in ev) == records.read_manifest(f"{coco_mini_sets}/unlabeled")["num_instances"]
