"""Drawing keypoints and skeletons on images (numpy only), for TensorBoard, predictions and docs."""

from __future__ import annotations

import numpy as np

from semipose_tf.keypoints import KeypointSpec


def _line(canvas: np.ndarray, p, q, color, alpha: float, width: int = 2) -> None:
  h, w = canvas.shape[:2]
  n = int(max(abs(q[0] - p[0]), abs(q[1] - p[1]))) + 1
  xs = np.linspace(p[0], q[0], n)
  ys = np.linspace(p[1], q[1], n)
  r = width // 2
  for x, y in zip(xs, ys):
    xi, yi = int(round(x)), int(round(y))
    x0, x1, y0, y1 = max(0, xi - r), min(w, xi + r + 1), max(0, yi - r), min(h, yi + r + 1)
    if x0 < x1 and y0 < y1:
      canvas[y0:y1, x0:x1] = (1 - alpha) * canvas[y0:y1, x0:x1] + alpha * np.asarray(color, np.float32)


def draw_keypoints(
  image: np.ndarray,
  keypoints: np.ndarray,
  spec: KeypointSpec,
  scores: np.ndarray | None = None,
  threshold: float = 0.0,
  radius: int = 2,
  min_alpha: float = 0.25,
) -> np.ndarray:
  """Draws a skeleton in the spec's limb colours; a joint's score (clipped to [0, 1]) sets its opacity.

  Args:
    image: [H, W, 3] uint8.
    keypoints: [K, 2] (x, y) pixels.
    spec: Keypoint spec (skeleton, colours).
    scores: [K] scores or None (all 1).
    threshold: Joints scoring at or below it are not drawn.
    radius: Joint dot radius in pixels.
    min_alpha: Opacity of a score-0 joint; a score-1 joint is opaque.

  Returns:
    A new [H, W, 3] uint8 image.
  """
  canvas = image.astype(np.float32).copy()
  k = len(keypoints)
  scores = np.ones(k, np.float32) if scores is None else np.clip(np.asarray(scores, np.float32), 0, 1)
  # Opacity grows with the score from min_alpha (so that low-confidence poses still show) to 1.
  alpha = min_alpha + (1.0 - min_alpha) * scores
  width = max(1, radius)
  for (a, b), color in zip(spec.skeleton, spec.limb_colors()):
    if scores[a] > threshold and scores[b] > threshold:
      _line(canvas, keypoints[a], keypoints[b], color, float(min(alpha[a], alpha[b])), width)
  h, w = canvas.shape[:2]
  for j in range(k):
    if scores[j] <= threshold:
      continue
    x, y = int(round(keypoints[j][0])), int(round(keypoints[j][1]))
    x0, x1, y0, y1 = max(0, x - radius), min(w, x + radius + 1), max(0, y - radius), min(h, y + radius + 1)
    if x0 < x1 and y0 < y1:
      canvas[y0:y1, x0:x1] = (1 - alpha[j]) * canvas[y0:y1, x0:x1] + alpha[j] * np.array([255, 0, 0])
  return np.clip(canvas + 0.5, 0, 255).astype(np.uint8)
