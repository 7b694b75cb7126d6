"""The official AnyTalker sampler's schedule and solver (FACTS.md §9).

Wan's FlowUniPCMultistepScheduler, built with shift 5 and set to `steps` with the sampling shift:
sigmas = linspace(sigma_max, 0, steps + 1)[:-1] with sigma_max the shift-5 training schedule's
first value, then shifted s*t / (1 + (s-1) t); a final sigma 0. The model sees int64(sigma * 1000);
the update uses the float sigmas (UniPC bh2, order 2, x0 prediction, lower order at the end).
diffusers' UniPCMultistepScheduler given these sigmas computes the same updates.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import GenerationInputError

NUM_TRAIN_TIMESTEPS = 1000
BUILD_SHIFT = 5.0  # the scheduler is constructed with shift 5 (only sigma_max depends on it)


def unipc_sigmas(steps: int, shift: float) -> np.ndarray:
    """[steps] float64 sampling sigmas (without the final 0), exactly as the official set_timesteps."""
    if steps < 1:
        raise GenerationInputError(f"steps is {steps}; set at least 1 (the official uses 20 to 40).")
    if shift <= 0:
        raise GenerationInputError(f"shift is {shift}; set a positive shift (3 at 480p, 5 otherwise).")
    train = 1.0 - np.linspace(1, 1 / NUM_TRAIN_TIMESTEPS, NUM_TRAIN_TIMESTEPS)[::-1]
    first = torch.tensor(train[0], dtype=torch.float32)  # the official keeps its training sigmas in fp32
    sigma_max = (BUILD_SHIFT * first / (1 + (BUILD_SHIFT - 1) * first)).item()
    sigmas = np.linspace(sigma_max, 0.0, steps + 1)[:-1]
    return shift * sigmas / (1 + (shift - 1) * sigmas)


class UniPCSampler:
    """One sampling run: `timesteps` [steps] int64 for the model, `step()` for the latent."""

    def __init__(self, steps: int, shift: float):
        from diffusers import UniPCMultistepScheduler

        sigmas = unipc_sigmas(steps, shift)
        self.timesteps = torch.from_numpy(sigmas * NUM_TRAIN_TIMESTEPS).to(torch.int64)
        self.scheduler = UniPCMultistepScheduler(
            num_train_timesteps=NUM_TRAIN_TIMESTEPS, prediction_type="flow_prediction", use_flow_sigmas=True,
            flow_shift=1.0, solver_order=2, solver_type="bh2", predict_x0=True, lower_order_final=True,
            final_sigmas_type="zero")
        self.scheduler.set_timesteps(sigmas=sigmas)
        self.sigmas = self.scheduler.sigmas  # [steps + 1] fp32, ends at 0

    def step(self, latent: torch.Tensor, velocity: torch.Tensor, index: int) -> torch.Tensor:
        """x_{i+1} from x_i and the guided velocity at step `index` (calls must follow the steps in order)."""
        out = self.scheduler.step(velocity.float(), self.scheduler.timesteps[index], latent.float())
        return out.prev_sample.to(latent.dtype)


def guide(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance with one scale: uncond + s (cond - uncond)."""
    return uncond + scale * (cond - uncond)
