"""Image-to-video conditioning of one window: the mask channels and the known frames' latent."""
from __future__ import annotations

from typing import Any

import torch

from ..encoders.vae import denormalize_wan_latents, normalize_wan_latents

VAE_TIME_STRIDE = 4


def latent_frames(pixel_frames: int) -> int:
    return (pixel_frames - 1) // VAE_TIME_STRIDE + 1


def known_frame_mask(known: int, window: int, height: int, width: int) -> torch.Tensor:
    """[1, 4, T_lat, h, w]: 1 for known pixel frames; the first frame's mask repeated 4 times so
    the 4*T_lat frame masks fold into 4 channels per latent frame."""
    mask = torch.zeros(1, window, height, width)
    mask[:, :known] = 1
    mask = torch.cat([mask[:, :1].repeat(1, VAE_TIME_STRIDE, 1, 1), mask[:, 1:]], dim=1)  # [1, 4*T, h, w]
    return mask.view(1, -1, VAE_TIME_STRIDE, height, width).transpose(1, 2)


def encode_frames(vae: Any, frames: torch.Tensor) -> torch.Tensor:
    """IMAGE frames [F, H, W, 3] in 0..1 -> the DiT's normalised latent [1, 16, T, h, w] (fp32)."""
    raw = vae.encode(frames)
    return normalize_wan_latents(raw.float().cpu())


def decode_latent(vae: Any, latent: torch.Tensor) -> torch.Tensor:
    """The DiT's normalised latent [1, 16, T, h, w] -> IMAGE frames [F, H, W, 3] in 0..1."""
    images = vae.decode(denormalize_wan_latents(latent.float().cpu()))
    return images.reshape(-1, *images.shape[-3:]).float().clamp(0, 1)


def window_condition(vae: Any, known: torch.Tensor, window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Known frames [k, H, W, 3] -> (y [1, 20, T, h, w], latent of the known frames [1, 16, t_k, h, w]).

    The rest of the window is filled with mid-grey (zero in the VAE's [-1, 1] pixel space),
    as the official pipeline pads it.
    """
    count, height, width, _ = known.shape
    pad = torch.full((window - count, height, width, 3), 0.5, dtype=known.dtype)
    latent = encode_frames(vae, torch.cat([known.cpu(), pad]))
    mask = known_frame_mask(count, window, latent.shape[-2], latent.shape[-1])
    return torch.cat([mask, latent], dim=1), latent[:, :, :latent_frames(count)]
