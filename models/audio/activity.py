"""Who speaks when: an energy-based voice activity estimate per video frame.

Not a speech recogniser: a frame counts as active when its RMS level is within 30 dB of the
track's loud frames and above an absolute floor; short gaps (breaths, plosives) are bridged
and isolated blips dropped, so the timeline shows turns rather than syllables.
"""
from __future__ import annotations

import numpy as np
import torch

from .prepare import SAMPLE_RATE

FLOOR_DB = -55.0  # below this a frame is silence whatever the track's level
RELATIVE_DB = 30.0  # active frames are within this of the track's loud (95th pct) frames
BRIDGE_S = 0.25  # gaps shorter than this inside speech count as speech
MIN_BURST_S = 0.1  # active runs shorter than this are dropped


def frame_levels_db(samples: np.ndarray, num_frames: int, fps: float) -> np.ndarray:
    """RMS level in dBFS of each video frame's slice of a 16 kHz track -> [num_frames]."""
    bounds = np.floor(np.arange(num_frames + 1) * SAMPLE_RATE / fps + 1e-6).astype(np.int64)
    bounds = np.minimum(bounds, samples.shape[0])
    squares = np.concatenate([[0.0], np.cumsum(samples.astype(np.float64) ** 2)])
    sizes = np.maximum(bounds[1:] - bounds[:-1], 1)
    mean_sq = (squares[bounds[1:]] - squares[bounds[:-1]]) / sizes
    return 10.0 * np.log10(np.maximum(mean_sq, 1e-12))


def _runs(mask: np.ndarray, value: bool) -> list[tuple[int, int]]:
    """[start, end) index runs where mask == value."""
    padded = np.concatenate([[False], mask == value, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[0::2], edges[1::2]))


def voice_activity(samples: np.ndarray, num_frames: int, fps: float) -> torch.Tensor:
    """Bool [num_frames]: is this track audibly speaking during each video frame?"""
    levels = frame_levels_db(samples, num_frames, fps)
    audible = levels[levels > FLOOR_DB]
    if audible.size == 0:
        return torch.zeros(num_frames, dtype=torch.bool)
    # Relative to the loud frames among the audible ones, so a speaker who talks briefly on a
    # long timeline is judged against their speech, not against the silence around it.
    active = levels > max(FLOOR_DB, float(np.percentile(audible, 95)) - RELATIVE_DB)
    bridge, burst = int(round(BRIDGE_S * fps)), int(round(MIN_BURST_S * fps))
    for a, b in _runs(active, False):
        if 0 < a and b < num_frames and b - a < bridge:
            active[a:b] = True
    for a, b in _runs(active, True):
        if b - a < burst:
            active[a:b] = False
    return torch.from_numpy(active.copy())
