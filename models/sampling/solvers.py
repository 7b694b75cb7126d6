"""Flow-matching ODE solvers over one window's timesteps.

"euler" is the official update x <- x - v * (t_i - t_{i+1}) / 1000. "unipc" is diffusers'
UniPC multistep solver (bh2, order 2) in flow-prediction mode on the same shifted schedule:
second order at no extra model evaluation, so fewer steps reach the same quality.
"""
from __future__ import annotations

import torch

from ..errors import GenerationInputError
from .schedule import NUM_TRAIN_TIMESTEPS, flow_timesteps

SOLVERS = ("euler", "unipc")


class EulerFlowSolver:
    def __init__(self, steps: int, shift: float):
        self.timesteps = flow_timesteps(steps, shift)  # [steps + 1]

    def step(self, latent: torch.Tensor, velocity: torch.Tensor, index: int) -> torch.Tensor:
        dt = (self.timesteps[index] - self.timesteps[index + 1]) / NUM_TRAIN_TIMESTEPS
        return latent - velocity * dt.to(latent.device)


class UniPCFlowSolver:
    def __init__(self, steps: int, shift: float):
        from diffusers import UniPCMultistepScheduler

        self.scheduler = UniPCMultistepScheduler(
            num_train_timesteps=NUM_TRAIN_TIMESTEPS, prediction_type="flow_prediction", use_flow_sigmas=True,
            flow_shift=1.0, solver_order=2, solver_type="bh2")
        sigmas = flow_timesteps(steps, shift)[:-1] / NUM_TRAIN_TIMESTEPS
        self.scheduler.set_timesteps(sigmas=sigmas.numpy())
        self.timesteps = self.scheduler.sigmas.float() * NUM_TRAIN_TIMESTEPS  # [steps + 1], ends at 0

    def step(self, latent: torch.Tensor, velocity: torch.Tensor, index: int) -> torch.Tensor:
        out = self.scheduler.step(velocity.float(), self.scheduler.timesteps[index], latent.float())
        return out.prev_sample.to(latent.dtype)


def make_solver(name: str, steps: int, shift: float):
    if steps < 1:
        raise GenerationInputError(f"steps is {steps}; set at least 1 (the official default is 40).")
    if shift <= 0:
        raise GenerationInputError(f"shift is {shift}; set a positive shift (7 for 480p, 11 for 720p).")
    if name == "euler":
        return EulerFlowSolver(steps, shift)
    if name == "unipc":
        return UniPCFlowSolver(steps, shift)
    raise GenerationInputError(f"Unknown sampler '{name}'; choose one of {', '.join(SOLVERS)}.")
