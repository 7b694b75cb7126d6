"""Audio features as the official AnyTalker pipeline computes them (FACTS.md §8).

Per track (16 kHz mono): input normalisation (wav2vec2-base-960h's preprocessor says
do_normalize: true), frame count ceil(seconds * fps) with fps 24; in "pad" mode zeros are
appended until the count is a multiple of the video's F (666 samples per frame at 24 fps);
wav2vec2 with its CNN features linearly resampled to that count; 12 hidden states stacked;
windows i-2..i+2 clamped; rounded to bf16 as the pipeline casts them. The pack's wav2vec2
encoder runs the network (models/audio).
"""
from __future__ import annotations

import dataclasses
import math
import os
from typing import Optional, Sequence

import numpy as np
import torch

from ..audio.wav2vec_features import encode_track, normalize_input
from ..audio.wav2vec_loader import Wav2VecEncoder
from ..audio.windows import window_features
from ..errors import AudioInputError
from .geometry import FPS

SAMPLE_RATE = 16000
FEATURE_DTYPE = torch.bfloat16  # the pipeline hands the model bf16 features (FACTS §8.8)


def _normalises(encoder: Wav2VecEncoder, normalize: Optional[bool]) -> bool:
    """Explicit choice, else the folder's preprocessor config, else True (wav2vec2-base-960h)."""
    if normalize is not None:
        return normalize
    source = str(encoder.source)
    folder = source if os.path.isdir(source) else os.path.dirname(source)
    has_config = bool(folder) and os.path.isfile(os.path.join(folder, "preprocessor_config.json"))
    return encoder.do_normalize if has_config else True


def track_features(encoder: Wav2VecEncoder, samples: np.ndarray, frames: int = -1, fps: float = FPS,
                   normalize: Optional[bool] = None) -> torch.Tensor:
    """One 16 kHz track -> windows [audio_length, 5, layers, hidden] float32.

    frames > 0 ("pad" mode) pads the audio so its frame count is a multiple of `frames`;
    frames = -1 ("concat" mode) keeps the track's own length."""
    x = np.asarray(samples, dtype=np.float32).reshape(-1)
    if x.size == 0:
        raise AudioInputError("An audio track is empty: give each speaker at least some audio.")
    if _normalises(encoder, normalize):
        x = normalize_input(x)
    length = math.ceil(len(x) / SAMPLE_RATE * fps)
    if frames > 0 and length % frames:
        x = np.pad(x, (0, (frames - length % frames) * (SAMPLE_RATE // int(fps))))
        length += frames - length % frames
    plain = dataclasses.replace(encoder, do_normalize=False)  # normalised above, before the padding
    hidden = encode_track(plain, x, length)  # [length, layers, hidden]
    return window_features(hidden, 0, length)


def identity_features(encoder: Wav2VecEncoder, tracks: Sequence[Optional[np.ndarray]], frames: int,
                      mode: str = "pad", fps: float = FPS, normalize: Optional[bool] = None) -> torch.Tensor:
    """Every identity's features on the video's timeline: [N, frames, 5, layers, hidden] bf16.

    "pad": tracks in parallel from frame 0; "concat": track k starts where track k-1 ends (its own
    length), zeros elsewhere. A missing track (None) is silence (zeros)."""
    if mode not in ("pad", "concat"):
        raise AudioInputError(f"Audio mode '{mode}' is unknown: choose 'pad' (parallel) or 'concat' (in turn).")
    if not any(t is not None for t in tracks):
        raise AudioInputError("No audio tracks: give at least one speaker's audio.")
    computed = [None if t is None else track_features(encoder, t, frames if mode == "pad" else -1, fps, normalize)
                .to(FEATURE_DTYPE) for t in tracks]
    shape = next(c for c in computed if c is not None).shape[1:]
    out = torch.zeros(len(tracks), frames, *shape, dtype=FEATURE_DTYPE)
    start = 0
    for index, features in enumerate(computed):
        if features is None:
            continue
        if mode == "pad":
            out[index, : min(frames, features.shape[0])] = features[:frames]
            continue
        end = min(start + features.shape[0], frames)
        if end > start:
            out[index, start:end] = features[: end - start]
        start += features.shape[0]
    return out
