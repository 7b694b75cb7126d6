"""The loss-curve picture the training node returns (numpy + OpenCV, no plotting library)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

_BACKGROUND, _AXES, _RAW, _SMOOTH = (255, 255, 255), (90, 90, 90), (170, 200, 240), (30, 70, 200)


def smoothed(values: Sequence[float], span: int = 0) -> np.ndarray:
    """Trailing moving average over `span` values (default: a twentieth of the run, at least 1)."""
    data = np.asarray(values, dtype=np.float64)
    span = span or max(1, len(data) // 20)
    sums = np.cumsum(np.insert(data, 0, 0.0))
    counts = np.minimum(np.arange(1, len(data) + 1), span)
    return (sums[1:] - sums[np.arange(len(data)) + 1 - counts]) / counts


def draw_loss_curve(losses: Sequence[float], width: int = 640, height: int = 360) -> torch.Tensor:
    """IMAGE [1, height, width, 3] in 0..1: raw losses (light) and their moving average (dark)."""
    import cv2

    canvas = np.full((height, width, 3), _BACKGROUND, dtype=np.uint8)
    left, right, top, bottom = 60, width - 15, 30, height - 35
    cv2.rectangle(canvas, (left, top), (right, bottom), _AXES, 1)
    title = f"MultiTalk adapter training: {len(losses)} steps"
    if len(losses):
        title += f", last {losses[-1]:.4f}"
    cv2.putText(canvas, title, (left, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.45, _AXES, 1, cv2.LINE_AA)
    if len(losses) == 0:
        return torch.from_numpy(canvas.astype(np.float32) / 255.0)[None]
    raw = np.asarray(losses, dtype=np.float64)
    lo, hi = float(np.nanmin(raw)), float(np.nanmax(raw))
    hi = hi if hi > lo else lo + 1e-6
    xs = left + np.arange(len(raw)) * (right - left) / max(1, len(raw) - 1)

    def points(values: np.ndarray) -> np.ndarray:
        ys = bottom - (values - lo) / (hi - lo) * (bottom - top)
        return np.stack([xs, ys], axis=1).round().astype(np.int32)[:, None]

    cv2.polylines(canvas, [points(raw)], False, _RAW, 1, cv2.LINE_AA)
    cv2.polylines(canvas, [points(smoothed(raw))], False, _SMOOTH, 2, cv2.LINE_AA)
    for value, y in ((hi, top), (lo, bottom)):
        cv2.putText(canvas, f"{value:.3g}", (4, y + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, _AXES, 1, cv2.LINE_AA)
    for step, x in ((1, left), (len(raw), right)):
        cv2.putText(canvas, str(step), (x - 10, bottom + 18), cv2.FONT_HERSHEY_SIMPLEX, 0.4, _AXES, 1, cv2.LINE_AA)
    return torch.from_numpy(canvas.astype(np.float32) / 255.0)[None]
