"""The flow-matching objective the released models were trained with, as separate small pieces.

A draw gives each sample a flow time sigma in [0, 1) (uniform u mapped through the sampler's
shift: sigma = s*u / (1 + (s-1)*u)) and Gaussian noise. The model sees
x_t = (1 - sigma) x0 + sigma noise at timestep 1000 sigma and must predict the velocity
noise - x0, so one Euler step x_t - sigma * v lands on x0 (the sampler's update).
Latent slots that inference overwrites (continuation windows) are left out of the loss.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

NUM_TRAIN_TIMESTEPS = 1000


@dataclass
class FlowDraw:
    sigma: torch.Tensor  # [B] flow time in [0, 1)
    noise: torch.Tensor  # like x0

    def slice(self, start: int, stop: int) -> "FlowDraw":
        return FlowDraw(self.sigma[start:stop], self.noise[start:stop])


def shifted_timesteps(u: torch.Tensor, shift: float) -> torch.Tensor:
    """Uniform u in [0, 1) -> flow time sigma in [0, 1) with the sampler's shift formula."""
    return shift * u / (1 + (shift - 1) * u)


def draw_flow(shape: Sequence[int], generator: torch.Generator, shift: float) -> FlowDraw:
    """sigma [B] then noise of `shape`, both from `generator` (CPU, so draws repeat on any device)."""
    sigma = shifted_timesteps(torch.rand(shape[0], generator=generator), shift)
    return FlowDraw(sigma, torch.randn(tuple(shape), generator=generator))


def noised_latents(x0: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    level = sigma.to(x0.device, x0.dtype).view(-1, *([1] * (x0.dim() - 1)))
    return (1 - level) * x0 + level * noise


def velocity_target(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    return noise - x0


def clean_motion_slots(noisy: torch.Tensor, x0: torch.Tensor, clean_slots: Sequence[int]) -> torch.Tensor:
    """InfiniteTalk continuations: the first slots hold the clean motion latents, as the sampler
    writes them at every step."""
    if not any(clean_slots):
        return noisy
    noisy = noisy.clone()
    for item, slots in enumerate(clean_slots):
        noisy[item, :, :slots] = x0[item, :, :slots]
    return noisy


def loss_weights(shape: Sequence[int], known_slots: Sequence[int], device: torch.device) -> Optional[torch.Tensor]:
    """[B, 1, T, 1, 1] 0 on latent slots the sampler overwrites, 1 elsewhere (None: all count)."""
    if not any(known_slots):
        return None
    weights = torch.ones(shape[0], 1, shape[2], 1, 1, device=device)
    for item, slots in enumerate(known_slots):
        weights[item, :, :slots] = 0
    return weights


def masked_mse(prediction: torch.Tensor, target: torch.Tensor, weights: Optional[torch.Tensor]) -> torch.Tensor:
    """Per-sample mean squared error over the counted elements, averaged over the batch (so a batch
    split across processes averages to the same number)."""
    error = (prediction.float() - target.float()).pow(2)
    if weights is None:
        return error.flatten(1).mean(1).mean()
    counted = weights.expand_as(error)
    per_sample = (error * counted).flatten(1).sum(1) / counted.flatten(1).sum(1).clamp_min(1.0)
    return per_sample.mean()
