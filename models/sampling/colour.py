"""Colour correction of generated windows towards the reference image: per-channel Lab mean
and standard deviation transfer, blended with the original by a strength in 0..1."""
from __future__ import annotations

import numpy as np
import torch


def _lab(image: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(image.astype(np.float32), cv2.COLOR_RGB2LAB)


def _rgb(lab: np.ndarray) -> np.ndarray:
    import cv2

    return np.clip(cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_LAB2RGB), 0.0, 1.0)


def match_colours(frames: torch.Tensor, reference: torch.Tensor, strength: float) -> torch.Tensor:
    """frames [F, H, W, 3] and reference [H, W, 3], both 0..1 -> corrected frames [F, H, W, 3]."""
    if strength <= 0:
        return frames
    ref = _lab(reference.clamp(0, 1).cpu().numpy())
    ref_mean, ref_std = ref.mean(axis=(0, 1)), ref.std(axis=(0, 1))
    out = []
    for frame in frames.clamp(0, 1).cpu().numpy():
        lab = _lab(frame)
        mean, std = lab.mean(axis=(0, 1)), lab.std(axis=(0, 1))
        scale = np.where(std > 0, ref_std / np.maximum(std, 1e-12), 0.0)  # flat channel: take the reference mean
        corrected = _rgb((lab - mean) * scale + ref_mean)
        out.append((1 - strength) * frame + strength * corrected)
    return torch.from_numpy(np.stack(out)).to(frames.dtype)
