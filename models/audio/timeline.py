"""Placing N speakers' tracks on one common timeline, exact to the sample.

Modes: "parallel" (every track starts at 0, padded with silence to the longest),
"sequential" (turn-taking: track k starts where track k-1 ends) and "offsets" (explicit
start second per track). All arithmetic is in 16 kHz samples.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from ..errors import AudioInputError
from .prepare import SAMPLE_RATE

TIMELINE_MODES = ("parallel", "sequential", "offsets")


@dataclass
class Timeline:
    placed: list[np.ndarray]  # per speaker float32 [total_samples], silence outside its span
    starts: list[int]  # first sample of each track on the timeline
    lengths: list[int]  # samples each track occupies (after any cut to total_samples)
    total_samples: int
    num_frames: int


def frames_for_samples(num_samples: int, fps: float, sample_rate: int = SAMPLE_RATE) -> int:
    """Video frames covered by a clip: int(seconds * fps), the official formula."""
    return int(num_samples / sample_rate * fps)


def samples_for_frames(num_frames: int, fps: float, sample_rate: int = SAMPLE_RATE) -> int:
    """Samples needed to cover `num_frames` video frames (640 per frame at 25 fps)."""
    return int(math.ceil(num_frames * sample_rate / fps - 1e-9))


def parse_seconds_list(text: str, count: int, what: str, require_all: bool) -> list[float]:
    """'0, 2.5; 4' -> [0.0, 2.5, 4.0]: one non-negative number of seconds per track.

    Missing trailing values are 0 unless `require_all`; more values than tracks is an error.
    """
    parts = [p for p in re.split(r"[,;\s]+", str(text or "").strip()) if p]
    values: list[float] = []
    for index, part in enumerate(parts, start=1):
        try:
            value = float(part)
        except ValueError:
            raise AudioInputError(
                f"{what}: '{part}' (track {index}) is not a number of seconds; write e.g. '0, 2.5'."
            ) from None
        if not math.isfinite(value) or value < 0:
            raise AudioInputError(f"{what}: track {index} has {part} seconds; use a value >= 0.")
        values.append(value)
    if len(values) > count:
        raise AudioInputError(
            f"{what}: {len(values)} values ('{text}') for {count} audio tracks; give at most one per track."
        )
    if require_all and len(values) < count:
        raise AudioInputError(
            f"{what}: {len(values)} values ('{text}') for {count} audio tracks; give one start time per track, e.g. "
            + "'" + ", ".join(str(2 * i) for i in range(count)) + "'."
        )
    return values + [0.0] * (count - len(values))


def track_starts(lengths: Sequence[int], mode: str, offsets_s: Optional[Sequence[float]] = None) -> list[int]:
    """First timeline sample of each track for a timeline mode."""
    if mode == "parallel":
        return [0] * len(lengths)
    if mode == "sequential":
        return [int(s) for s in np.concatenate([[0], np.cumsum(lengths)[:-1]])]
    if mode == "offsets":
        if offsets_s is None or len(offsets_s) != len(lengths):
            raise AudioInputError(f"Timeline mode 'offsets' needs one start time per track ({len(lengths)} tracks).")
        return [int(round(s * SAMPLE_RATE)) for s in offsets_s]
    raise AudioInputError(f"Unknown timeline mode '{mode}': choose one of {', '.join(TIMELINE_MODES)}.")


def build_timeline(
    tracks: Sequence[np.ndarray],
    mode: str,
    fps: float,
    offsets_s: Optional[Sequence[float]] = None,
    num_frames: Optional[int] = None,
) -> Timeline:
    """Place 16 kHz mono tracks on a common timeline.

    Without `num_frames` the timeline ends with the last track and lasts int(seconds * fps)
    video frames; with it, the timeline is cut or padded with silence to exactly that many.
    """
    if fps <= 0:
        raise AudioInputError(f"fps must be positive (got {fps}).")
    lengths = [int(t.shape[0]) for t in tracks]
    starts = track_starts(lengths, mode, offsets_s)
    natural_end = max(s + n for s, n in zip(starts, lengths))
    if num_frames is None:
        total = natural_end
        num_frames = frames_for_samples(total, fps)
    else:
        total = samples_for_frames(num_frames, fps)
    if num_frames < 1:
        raise AudioInputError(
            f"The audio timeline lasts {total / SAMPLE_RATE:.3f} s, less than one video frame at {fps:g} fps: "
            "give longer audio."
        )
    placed, kept = [], []
    for start, track in zip(starts, tracks):
        line = np.zeros(total, dtype=np.float32)
        piece = track[: max(0, total - start)]
        line[start : start + piece.shape[0]] = piece
        placed.append(line)
        kept.append(int(piece.shape[0]))
    return Timeline(placed=placed, starts=starts, lengths=kept, total_samples=total, num_frames=num_frames)


def mix_tracks(placed: Sequence[np.ndarray]) -> np.ndarray:
    """Sum of the placed tracks [total], scaled down as a whole if its peak exceeds 1 (no clipping)."""
    mixed = np.sum(np.stack(placed, axis=0), axis=0).astype(np.float32)
    peak = float(np.abs(mixed).max()) if mixed.size else 0.0
    return mixed / peak if peak > 1.0 else mixed
