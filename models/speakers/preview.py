"""The binding picture: each speaker's region tinted in its colour and labelled with its track.

Colours come from the pack's one speaker palette (models/audio/palette.py, RGB 0..255,
0-based), so a speaker has the same colour here as on the audio timeline.
"""
from __future__ import annotations

import numpy as np
import torch

from ..audio.palette import SPEAKER_COLORS

TINT_ALPHA = 0.45


def speaker_color(track: int) -> tuple[float, float, float]:
    """RGB colour (0..1) of speaker `track` (1-based); the palette repeats past its length."""
    red, green, blue = SPEAKER_COLORS[(track - 1) % len(SPEAKER_COLORS)]
    return red / 255.0, green / 255.0, blue / 255.0


def tint(image: torch.Tensor, masks: torch.Tensor, alpha: float = TINT_ALPHA) -> torch.Tensor:
    """IMAGE [1,H,W,3] with speaker k's pixels (masks [S,H,W]) blended towards its colour.

    A pixel claimed by several speakers (overlap rule "keep") takes the last one's colour.
    """
    out = image[0].clone().float()  # [H,W,3]
    for index in range(masks.shape[0]):
        inside = masks[index] > 0
        color = torch.tensor(speaker_color(index + 1))
        out[inside] = out[inside] * (1 - alpha) + color * alpha
    return out[None]


def _label(canvas: np.ndarray, mask: np.ndarray, track: int) -> None:
    """Outline the region and write the track number near its top-left, in place."""
    import cv2

    color = SPEAKER_COLORS[(track - 1) % len(SPEAKER_COLORS)]
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    thickness = max(2, canvas.shape[0] // 240)
    cv2.drawContours(canvas, contours, -1, color, thickness)
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return
    scale = max(0.8, canvas.shape[0] / 320)
    (tw, th), _ = cv2.getTextSize(str(track), cv2.FONT_HERSHEY_SIMPLEX, scale, 2 * thickness)
    x = int(min(max(xs.min() + 2 * thickness, 0), canvas.shape[1] - tw))
    y = int(min(max(ys.min() + th + 2 * thickness, th), canvas.shape[0] - 1))
    # dark outline first so the number reads on light and dark pictures alike
    for ink, width in (((0, 0, 0), 4 * thickness), (color, 2 * thickness)):
        cv2.putText(canvas, str(track), (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, ink, width, cv2.LINE_AA)


def render_preview(image: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Preview IMAGE [1,H,W,3]: tinted regions, outlines and track numbers; background plain."""
    tinted = tint(image, masks)
    canvas = np.ascontiguousarray((tinted[0].clamp(0, 1) * 255).round().to(torch.uint8).numpy())
    for index in range(masks.shape[0]):
        _label(canvas, (masks[index] > 0).numpy(), index + 1)
    return torch.from_numpy(canvas.astype(np.float32) / 255.0)[None]


def save_preview_png(preview: torch.Tensor, path: str) -> str:
    """Write a preview IMAGE [1,H,W,3] as a PNG (the command line's copy of the picture)."""
    from PIL import Image

    pixels = (preview[0].clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    Image.fromarray(pixels).save(path)
    return path
