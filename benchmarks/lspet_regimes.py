"""The LSPET benchmark's rows and regimes: what ``benchmarks/ssl_lspet.py`` trains and its page names.

Each regime is a folder of gin files with its label budget, input size, data, records, page, pictures and the texts
its page states (network, shared start, schedule, probe people). Data only; the script and the page read it.
"""

from __future__ import annotations

METHODS = ("supervised", "affine", "single", "adaptive", "plus", "upper_bound")
DIAGNOSTICS = ("oracle_affine", "oracle_single", "oracle_plus", "anchor_supervised", "anchor_plus")
# The anchors' schedule (box regime, issue 34): from ImageNet, labeled and unlabeled together from step 0, no shared
# start; the plus anchor is paired with the supervised anchor, not with the rows' supervised. Every other row is
# paired with "supervised"; a row paired with nothing (None) shows no gain.
PAIRED_WITH = {"supervised": None, "anchor_supervised": None, "anchor_plus": "anchor_supervised"}
LABELS = {
  "supervised": "Supervised, {n} labels",
  "affine": 'Affine only (Table 3 "A")',
  "single": "Single (5 fixed masks)",
  "adaptive": "Ours, adaptive masking",
  "plus": "Ours, plus (adaptive + mixup)",
  "upper_bound": "Supervised, all 9,000 labels (upper bound)",
  "oracle_affine": "Diagnostic: affine, ground-truth targets",
  "oracle_single": "Diagnostic: single, ground-truth targets",
  "oracle_plus": "Diagnostic: plus, ground-truth targets",
  "anchor_supervised": "Anchors' schedule: supervised from ImageNet, no shared start (start + row steps)",
  "anchor_plus": "Anchors' schedule: plus from ImageNet, no shared start (gain over the supervised anchor)",
}


def label(method: str, n: int) -> str:
  """The row's name on the page, with the regime's label budget."""
  return LABELS[method].replace("{n}", f"{n:,}")


GROUPS = ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle")
# Per regime: its gin folder, label budget (set name, count), input size (the pictures), where its results go.
REGIMES = {
  "random": dict(
    gin_dir="lspet",
    budget=("labeled_200", 200),
    input_size=(256, 256),
    name="ssl_lspet",
    pictures="lspet_supervised_vs_plus.png",
    issue=11,
    regime_page="lspet_regime/README.md",
    title="200 labels, random weights",
    network="SimpleBaseline-R18 at width 16 (deconv 64 x 3) from random weights, 256x256",
    start="supervised burn-in (200 labels, 4,000 steps)",
    schedule="8 epochs x 250 steps of 16 labeled + 16 unlabeled, Adam 1e-3, x0.1 from epoch 6",
    alone="supervised rows alone: about 9.5 min",
    fingerprint="15.2 images/s",
    probe_images="im00201..im00700",
    findings="ssl_lspet_findings.md",
    floors={"Mean pose of the training labels (no network)": 2.8},
  ),
  "imagenet": dict(
    gin_dir="lspet_imagenet",
    budget=("labeled_1000", 1000),
    input_size=(192, 192),
    name="ssl_lspet_imagenet",
    pictures="lspet_imagenet_supervised_vs_plus.png",
    issue=20,
    regime_page="lspet_imagenet_regime/README.md",
    title="1,000 labels, ImageNet start",
    network="EfficientNet-Lite0 (deconv 128 x 3) from its ImageNet weights, 192x192",
    start="supervised network from ImageNet (1,000 labels, 4,000 steps)",
    schedule="2 epochs x 250 steps of 16 labeled + 16 unlabeled, Adam 1e-4, deterministic ops",
    alone=None,
    fingerprint=None,
    probe_images="im01001..im01500",
    findings=None,
    floors={},
  ),
  "box": dict(
    gin_dir="lspet_box",
    budget=("labeled_1000", 1000),
    input_size=(192, 192),
    box="joints",
    data_root="data/lspet_box",
    name="ssl_lspet_box",
    pictures="lspet_box_supervised_vs_plus.png",
    issue=34,
    gap_needed=5,  # Issue 34's condition (b); the earlier regimes' issues asked for 15.
    decided=True,  # lspet_box_regime/README.md has its decision (2026-12-04): 4-epoch rows.
    regime_page="lspet_box_regime/README.md",
    title="1,000 labels, person boxes, ImageNet start",
    network="EfficientNet-Lite0 (deconv 128 x 3) from its ImageNet weights, 192x192, each person "
    "cropped by the box around its annotated joints",
    start="supervised network from ImageNet on person boxes (1,000 labels, 4,000 steps)",
    schedule="the regime's rows (gin_configs/base/lspet_box_bench.gin), Adam 1e-4, deterministic ops",
    alone=None,
    fingerprint=None,
    probe_images="im01001..im01500",
    findings="ssl_lspet_box_findings.md",
    floors={},
  ),
}
