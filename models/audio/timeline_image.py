"""The 'who speaks when' picture: one row per speaker, coloured where they speak, seconds below."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch

from .palette import speaker_color

WIDTH = 1024
ROW_HEIGHT = 44
LABEL_WIDTH = 56
AXIS_HEIGHT = 30
_BACKGROUND = (32, 32, 36)
_ROW_BACKGROUND = (48, 48, 54)
_TEXT = (220, 220, 220)
_NICE_STEPS = (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600)


def _tick_step(duration: float, max_ticks: int = 12) -> float:
    for step in _NICE_STEPS:
        if duration / step <= max_ticks:
            return step
    return _NICE_STEPS[-1]


def _format_seconds(t: float) -> str:
    if t >= 60:
        return f"{int(t // 60)}:{int(t % 60):02d}"
    return f"{t:g}s"


def _envelope(samples: np.ndarray, columns: int) -> np.ndarray:
    """Peak amplitude per pixel column -> [columns] in 0..1."""
    if samples.size == 0:
        return np.zeros(columns)
    edges = np.linspace(0, samples.shape[0], columns + 1).astype(np.int64)
    peaks = np.maximum.reduceat(np.abs(samples), np.minimum(edges[:-1], samples.shape[0] - 1))
    return np.clip(peaks / max(float(np.abs(samples).max()), 1e-6), 0, 1)


def timeline_geometry(frames: int, fps: float, width: int = WIDTH) -> dict:
    """Where time runs on the picture draw_timeline() makes: second t sits at pixel
    plot_left + t / duration * plot_width (for the play cursor drawn over it in the browser)."""
    return {"duration": frames / fps, "plot_left": LABEL_WIDTH, "plot_width": width - LABEL_WIDTH - 8,
            "image_width": width}


def draw_timeline(
    activity: torch.Tensor,
    fps: float,
    tracks: Optional[Sequence[np.ndarray]] = None,
    width: int = WIDTH,
) -> torch.Tensor:
    """activity bool [S, F] (+ optional placed tracks) -> IMAGE [1, H, W, 3] float 0..1.

    Each speaker row is tinted where they speak (their palette colour) with the waveform
    envelope on top; the axis below is in seconds (m:ss beyond a minute)."""
    import cv2

    speakers, frames = activity.shape
    height = speakers * ROW_HEIGHT + AXIS_HEIGHT
    img = np.full((height, width, 3), _BACKGROUND, dtype=np.uint8)
    plot_w = width - LABEL_WIDTH - 8
    frame_x = LABEL_WIDTH + (np.arange(frames + 1) * plot_w / max(frames, 1)).astype(int)  # [F+1] pixel edges
    for s in range(speakers):
        top, colour = s * ROW_HEIGHT + 4, speaker_color(s)
        bottom = top + ROW_HEIGHT - 8
        cv2.rectangle(img, (LABEL_WIDTH, top), (LABEL_WIDTH + plot_w, bottom), _ROW_BACKGROUND, -1)
        mask = activity[s].numpy().astype(np.int8)
        edges = np.flatnonzero(np.diff(np.concatenate([[0], mask, [0]])))
        for a, b in zip(edges[0::2], edges[1::2]):
            dim = tuple(int(c * 0.55) for c in colour)
            cv2.rectangle(img, (int(frame_x[a]), top), (int(frame_x[b]) - 1, bottom), dim, -1)
        if tracks is not None:
            env = _envelope(tracks[s], plot_w)
            mid, half = (top + bottom) // 2, (bottom - top) // 2 - 2
            for x, amp in enumerate(env):
                h = int(amp * half)
                if h > 0:
                    cv2.line(img, (LABEL_WIDTH + x, mid - h), (LABEL_WIDTH + x, mid + h), colour, 1)
        label_y = (top + bottom) // 2 + 6
        cv2.putText(img, f"S{s + 1}", (8, label_y), cv2.FONT_HERSHEY_SIMPLEX, 0.6, colour, 2, cv2.LINE_AA)
    _draw_axis(img, frames / fps, speakers * ROW_HEIGHT, plot_w)
    return torch.from_numpy(img.astype(np.float32) / 255.0)[None]


def _draw_axis(img: np.ndarray, duration: float, y: int, plot_w: int) -> None:
    import cv2

    cv2.line(img, (LABEL_WIDTH, y + 2), (LABEL_WIDTH + plot_w, y + 2), _TEXT, 1)
    step = _tick_step(duration)
    for k in range(int(duration / step + 1e-9) + 1):
        t = k * step
        x = LABEL_WIDTH + int(round(t / max(duration, 1e-9) * plot_w))
        cv2.line(img, (x, y + 2), (x, y + 7), _TEXT, 1)
        label = _format_seconds(t)
        (tw, _), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)
        x_text = min(max(x - tw // 2, 0), img.shape[1] - tw - 1)
        cv2.putText(img, label, (x_text, y + 22), cv2.FONT_HERSHEY_SIMPLEX, 0.4, _TEXT, 1, cv2.LINE_AA)
