"""The flow-matching timestep schedule of the official sampler.

Timesteps are linspace(1000, 1, steps) followed by 0, each shifted by t' = s*t / (1 + (s-1)*t)
on t in [0, 1]; the model sees t' * 1000. A clean sample x0 is noised to time t as
(1 - t/1000) * x0 + t/1000 * noise. Step-distilled LoRAs were trained on a fixed list of
timesteps instead (lightx2v: 1000, 750, 500, 250 with shift 5), shifted the same way.
"""
from __future__ import annotations

import numpy as np
import torch

NUM_TRAIN_TIMESTEPS = 1000


def shift_timestep(t: torch.Tensor, shift: float, num_train: int = NUM_TRAIN_TIMESTEPS) -> torch.Tensor:
    unit = t / num_train
    return shift * unit / (1 + (shift - 1) * unit) * num_train


def flow_timesteps(steps: int, shift: float, num_train: int = NUM_TRAIN_TIMESTEPS) -> torch.Tensor:
    """[steps + 1] fp32 model timesteps from ~1000 down to 0 (the last one ends the last step)."""
    base = np.linspace(num_train, 1, steps, dtype=np.float32).tolist() + [0.0]
    return shift_timestep(torch.tensor(base, dtype=torch.float32), shift, num_train)


def listed_timesteps(step_list: tuple[float, ...], shift: float,
                     num_train: int = NUM_TRAIN_TIMESTEPS) -> torch.Tensor:
    """[len + 1] fp32 model timesteps: a distilled LoRA's (unshifted) list, shifted, then 0."""
    base = [float(t) for t in step_list] + [0.0]
    return shift_timestep(torch.tensor(base, dtype=torch.float32), shift, num_train)


def add_noise(clean: torch.Tensor, noise: torch.Tensor, t: torch.Tensor | float,
              num_train: int = NUM_TRAIN_TIMESTEPS) -> torch.Tensor:
    level = float(t) / num_train
    return (1 - level) * clean + level * noise
