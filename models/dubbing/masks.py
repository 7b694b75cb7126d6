"""Masked dubbing: where a window is regenerated, and how it is blended with the source.

Pixels: the head region, feathered: 1 inside, falling linearly to 0 at `feather` pixels
outside (Euclidean distance), so pixels farther than that stay the source's exactly.
Latents: every latent cell under a pixel the composite takes from the generation, plus one
cell, is free; one more cell is half free; the rest follows the source noised to the current
timestep.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..sampling.schedule import add_noise
from ..speakers.geometry import LATENT_STRIDE

LATENT_EDGE = 2  # latent cells of the latent mask's soft edge (1 free, 1 half free)


def feathered(region: torch.Tensor, feather: float) -> torch.Tensor:
    """bool [H, W] -> float [H, W]: 1 on the region, 1 - distance / feather outside, 0 from
    `feather` pixels away (0 everywhere for an empty region)."""
    if not bool(region.any()):
        return torch.zeros(region.shape)
    if feather <= 0:
        return region.float()
    from scipy.ndimage import distance_transform_edt

    distance = distance_transform_edt(~region.numpy())  # to the nearest region pixel
    return torch.from_numpy(np.clip(1.0 - distance / feather, 0.0, 1.0)).float()


def latent_mask(pixel_weight: torch.Tensor) -> torch.Tensor:
    """Composite weight [H, W] -> latent freedom [h, w] (H/8, W/8) with a soft edge."""
    support = pixel_weight[None, None] > 0
    cells = F.max_pool2d(support.float(), LATENT_STRIDE)[0, 0] > 0  # any pixel of the cell composited
    cells = F.max_pool2d(cells[None, None].float(), 3, stride=1, padding=1)[0, 0] > 0  # plus one cell
    return feathered(cells, LATENT_EDGE)


@dataclass
class SourceBlend:
    """One window's blend with the source (see the module docstring)."""

    latent_weight: torch.Tensor  # [h, w] 1 = generated
    pixel_weight: torch.Tensor  # [H, W] 1 = generated
    source_latent: torch.Tensor  # [1, 16, T, h, w] normalised latent of the window's source frames
    source_frames: torch.Tensor  # [F, H, W, 3] 0..1

    def latent(self, latent: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Outside the region: the source noised to t with the window's starting noise."""
        weight = self.latent_weight.to(latent.device, latent.dtype)
        known = add_noise(self.source_latent.to(latent.device, latent.dtype), noise.to(latent.dtype), t)
        return latent * weight + known * (1 - weight)

    def frames(self, frames: torch.Tensor) -> torch.Tensor:
        weight = self.pixel_weight[None, :, :, None].to(frames.dtype)
        return frames * weight + self.source_frames.to(frames.dtype) * (1 - weight)
