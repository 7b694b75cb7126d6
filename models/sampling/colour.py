"""Colour correction of generated windows towards the reference image, as the official
MultiTalk/InfiniteTalk pipelines do it: per-channel Lab mean and standard deviation transfer
with exact sRGB <-> Lab conversions (scikit-image), blended with the original by a strength.

OpenCV's float Lab conversion goes through a lookup table and is off by up to 0.3 Lab units,
which shifts frames by up to 5e-2 and carries into later windows; scikit-image computes the
CIE formulas exactly (the official code uses it).
"""
from __future__ import annotations

import warnings

import numpy as np
import torch

from ..errors import GenerationInputError

# The official command lines (generate_multitalk.py, generate_infinitetalk.py) default to 1.0.
OFFICIAL_STRENGTH = 1.0


def _lab_statistics(lab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and (population) standard deviation of an [H, W, 3] Lab image."""
    return lab.mean(axis=(0, 1)), lab.std(axis=(0, 1))


def _transfer(frame: np.ndarray, ref_mean: np.ndarray, ref_std: np.ndarray) -> np.ndarray:
    """[H, W, 3] RGB 0..1 -> the same frame with the reference's Lab statistics, RGB 0..1."""
    from skimage import color

    lab = color.rgb2lab(frame)
    mean, std = _lab_statistics(lab)
    flat = std == 0  # a channel without variation takes the reference mean
    scale = np.where(flat, 0.0, ref_std / np.where(flat, 1.0, std)).astype(lab.dtype)
    corrected = (lab - mean) * scale + ref_mean.astype(lab.dtype)
    with warnings.catch_warnings():  # out-of-gamut colours are clipped, as the official does
        warnings.simplefilter("ignore", UserWarning)
        rgb = color.lab2rgb(corrected)
    return np.clip(rgb, 0.0, 1.0)


def match_colours(frames: torch.Tensor, reference: torch.Tensor, strength: float) -> torch.Tensor:
    """frames [F, H, W, 3] and reference [H, W, 3], both 0..1 -> corrected frames [F, H, W, 3].

    strength 0 returns the frames untouched, 1 the fully transferred colours; in between a
    linear blend in RGB, as the official `match_and_blend_colors`.
    """
    if not 0.0 <= strength <= 1.0:
        raise GenerationInputError(f"Colour correction strength {strength} is outside 0..1: use 0 (off) to 1 "
                                   f"(the official default, {OFFICIAL_STRENGTH}).")
    if strength == 0:
        return frames
    from skimage import color

    ref_mean, ref_std = _lab_statistics(color.rgb2lab(reference.float().clamp(0, 1).cpu().numpy()))
    source = frames.float().clamp(0, 1).cpu().numpy()
    out = np.stack([(1 - strength) * frame + strength * _transfer(frame, ref_mean, ref_std) for frame in source])
    return torch.from_numpy(out).to(frames.dtype)
