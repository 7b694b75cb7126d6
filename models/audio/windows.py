"""Per-frame wav2vec windows that the DiT consumes: frame i sees frames i-2..i+2."""
from __future__ import annotations

from typing import Sequence

import torch

AUDIO_WINDOW = 5  # wav2vec frames per video frame (i-2 .. i+2)


def window_indices(num_features: int, start: int, length: int, window: int = AUDIO_WINDOW) -> torch.Tensor:
    """[length, window] feature indices for frames start..start+length-1, clamped to [0, T-1]."""
    half = window // 2
    centres = torch.arange(start, start + length)[:, None]  # [length, 1]
    offsets = torch.arange(-half, window - half)[None, :]  # [1, window]
    return (centres + offsets).clamp_(0, num_features - 1)


def window_features(features: torch.Tensor, start: int, length: int, window: int = AUDIO_WINDOW) -> torch.Tensor:
    """features [T, L, C] -> [length, window, L, C] for video frames start..start+length-1.

    Indices outside the track (before 0 or past T-1, including whole windows past the end)
    are clamped to the first/last feature frame, as the official sampler does."""
    if features.shape[0] == 0:
        raise ValueError("window_features needs at least one feature frame")
    return features[window_indices(features.shape[0], start, length, window)]


def stack_speaker_windows(
    features: Sequence[torch.Tensor], start: int, length: int, window: int = AUDIO_WINDOW
) -> torch.Tensor:
    """Per-speaker features [T, L, C] each -> [S, length, window, L, C]."""
    return torch.stack([window_features(f, start, length, window) for f in features], dim=0)
