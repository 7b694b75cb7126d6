"""Output size and frame count as the official AnyTalker CLI and pipeline compute them (FACTS.md §9).

AnyTalker generates the whole clip in one pass: the frame count follows the audio, and the
size follows the image's aspect ratio and a pixel budget (no bucket table, no crop).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ..errors import AudioInputError, GenerationInputError

VAE_STRIDE = 8
PATCH = 2
SNAP = 32
FPS = 24  # the official cfg.fps: audio features and frame count (the saved video says 16 unless told)


def _snap(value: float) -> int:
    return max(SNAP, int(value) // SNAP * SNAP)


def output_size(image_hw: tuple[int, int], max_area: int) -> tuple[int, int]:
    """(height, width) in pixels, multiples of 32, for an image of `image_hw` and a pixel budget.

    The latent size fits the budget at the image's aspect ratio (even sizes); that size is then
    snapped to multiples of 32 by width or by height, whichever moves it less (ties: by width)."""
    height, width = image_hw
    if height < 1 or width < 1 or max_area < SNAP * SNAP:
        raise GenerationInputError(f"Cannot size a video from a {width}x{height} image with max_area {max_area}: "
                                   f"give a real image and max_area >= {SNAP * SNAP} (e.g. 832*480).")
    ratio = height / width
    lat_h = round(np.sqrt(max_area * ratio) // VAE_STRIDE // PATCH * PATCH)
    lat_w = round(np.sqrt(max_area / ratio) // VAE_STRIDE // PATCH * PATCH)
    if lat_h == 0 or lat_w == 0:
        raise GenerationInputError(f"A {width}x{height} image is too narrow for max_area {max_area}: crop it closer "
                                   "to the usual 16:9 .. 9:16 range or raise max_area.")
    h, w = lat_h * VAE_STRIDE, lat_w * VAE_STRIDE
    kept = h / w
    w1 = _snap(w)
    h1 = _snap(int(w1 * kept))
    h2 = _snap(h)
    w2 = _snap(int(h2 / kept))
    if abs(w1 - w) + abs(h1 - h) <= abs(w2 - w) + abs(h2 - h):
        return h1, w1
    return h2, w2


def parse_max_area(text: str | int) -> int:
    """'832*480' (the official --size) or a number -> pixels."""
    if isinstance(text, int):
        return text
    parts = str(text).lower().replace("x", "*").split("*")
    try:
        return math.prod(int(p) for p in parts)
    except ValueError:
        raise GenerationInputError(f"Size '{text}' is not 'width*height' (e.g. 832*480).") from None


def frame_count(durations_s: Sequence[float], fps: float = FPS, mode: str = "pad") -> int:
    """Video frames (4n+1) for the audio tracks: the longest track ("pad": tracks in parallel) or
    the sum ("concat": one after another)."""
    durations = [float(d) for d in durations_s if d is not None]
    if mode not in ("pad", "concat"):
        raise AudioInputError(f"Audio mode '{mode}' is unknown: choose 'pad' (parallel) or 'concat' (in turn).")
    total = sum(durations) if mode == "concat" else max(durations, default=0.0)
    if total <= 0:
        raise AudioInputError("No audio with a length: give at least one non-empty track to set the video length.")
    frames = int(math.ceil(total * fps))
    return max(1, (frames - 1) // 4 * 4 + 1)
