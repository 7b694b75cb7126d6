"""Is a window's sound in sync with its speakers' mouths? A cheap audio-visual offset estimate.

For each speaker with a detected face: the mouth region's motion per frame (mean absolute
change of its grey levels) against the change of that speaker's loudness per frame, correlated
at offsets of up to MAX_LAG frames either way. The offset with the highest correlation is the
estimate; its confidence is how far that correlation stands above the median over all offsets
(the measure SyncNet reports, on a far simpler signal). A window is unsynchronised when the
estimate is confident and further off than the allowed frames; when the signals are too weak to
tell, nothing is decided. This is a filter for gross errors (a dubbed or shifted track, a wrong
file), not a lip-sync metric.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from ..speakers.detect import Face

MAX_LAG = 10  # frames either way (0.4 s at 25 fps)
MIN_CONFIDENCE = 0.25
SAMPLES_PER_FRAME = 640  # 16 kHz / 25 fps


def mouth_box(face: Face, height: int, width: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the lower middle of a face box, where the mouth is."""
    x0, x1 = face.x + 0.2 * face.w, face.x + 0.8 * face.w
    y0, y1 = face.y + 0.6 * face.h, face.y + 1.05 * face.h
    return (max(0, int(x0)), max(0, int(y0)), min(width, int(np.ceil(x1))), min(height, int(np.ceil(y1))))


def mouth_motion(frames: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """[F] mean absolute grey-level change inside the box from the previous frame (frame 0: 0)."""
    x0, y0, x1, y1 = box
    grey = frames[:, y0:y1, x0:x1].astype(np.float32).mean(-1)
    motion = np.abs(np.diff(grey, axis=0)).mean(axis=(1, 2))
    return np.concatenate([[0.0], motion])


def loudness_change(track: np.ndarray, start: int, count: int) -> np.ndarray:
    """[count] absolute change of the RMS loudness per video frame of a 16 kHz track."""
    segment = np.zeros(count * SAMPLES_PER_FRAME, dtype=np.float32)
    piece = track[start * SAMPLES_PER_FRAME:(start + count) * SAMPLES_PER_FRAME]
    segment[:piece.size] = piece
    rms = np.sqrt((segment.reshape(count, SAMPLES_PER_FRAME) ** 2).mean(1))
    return np.abs(np.diff(rms, prepend=rms[:1]))


def estimate_offset(visual: np.ndarray, audio: np.ndarray, max_lag: int = MAX_LAG) -> tuple[int, float]:
    """(offset in frames, confidence): a positive offset means the sound comes late."""
    def z(x: np.ndarray) -> np.ndarray:
        return (x - x.mean()) / (x.std() + 1e-8)

    v, a = z(visual), z(audio)
    lags = range(-max_lag, max_lag + 1)
    scores = []
    for lag in lags:  # visual at t against audio at t + lag
        if lag >= 0:
            scores.append(float((v[:len(v) - lag] * a[lag:]).mean()))
        else:
            scores.append(float((v[-lag:] * a[:lag]).mean()))
    best = int(np.argmax(scores))
    return list(lags)[best], scores[best] - float(np.median(scores))


def speaker_faces(faces: list[Face], masks: torch.Tensor) -> list[Optional[Face]]:
    """The face inside each speaker's region [S, H, W] (one speaker: the most prominent face)."""
    if masks.shape[0] == 1:
        return [faces[0] if faces else None]
    chosen = []
    for region in masks:
        inside = [f for f in faces if 0 <= int(f.center[1]) < region.shape[0] and 0 <= int(f.center[0]) <
                  region.shape[1] and region[int(f.center[1]), int(f.center[0])] > 0]
        chosen.append(inside[0] if inside else None)
    return chosen


def unsynchronised(frames: np.ndarray, faces: list[Optional[Face]], tracks: list[np.ndarray], start: int,
                   max_offset: int) -> Optional[str]:
    """Why the window's sound is out of sync with a speaker's mouth, or None (in sync, or unknown)."""
    height, width = frames.shape[1:3]
    for number, (face, track) in enumerate(zip(faces, tracks), start=1):
        if face is None:
            continue
        visual = mouth_motion(frames, mouth_box(face, height, width))
        lag, confidence = estimate_offset(visual, loudness_change(track, start, frames.shape[0]))
        if abs(lag) > max_offset and confidence >= MIN_CONFIDENCE:
            late = "late" if lag > 0 else "early"
            return (f"unsynchronised audio: speaker {number}'s sound is about {abs(lag)} frames "
                    f"({abs(lag) / 25:.2f} s) {late} against the mouth (confidence {confidence:.2f}; at most {max_offset} frames allowed)")
    return None
