"""Flow-matching ODE solvers over one window's timesteps.

"euler" is the official update x <- x - v * (t_i - t_{i+1}) / 1000. "unipc" is diffusers'
UniPC multistep solver (bh2, order 2) in flow-prediction mode on the same shifted schedule:
second order at no extra model evaluation, so fewer steps reach the same quality. "lcm" takes
the clean estimate x0 = x - v * t_i / 1000 and noises it afresh to t_{i+1}: the sampler that
step-distilled LoRAs (lightx2v) were trained with. The timesteps are the shifted linspace, or a
distilled LoRA's own list (`step_list`).
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch

from ..errors import GenerationInputError
from .schedule import NUM_TRAIN_TIMESTEPS, flow_timesteps, listed_timesteps

SOLVERS = ("euler", "unipc", "lcm")


class EulerFlowSolver:
    def __init__(self, timesteps: torch.Tensor):
        self.timesteps = timesteps  # [steps + 1]

    def step(self, latent: torch.Tensor, velocity: torch.Tensor, index: int) -> torch.Tensor:
        dt = (self.timesteps[index] - self.timesteps[index + 1]) / NUM_TRAIN_TIMESTEPS
        return latent - velocity * dt.to(latent.device)


class RenoiseFlowSolver:
    """x0 from the velocity, then fresh noise to the next time (none after the last step)."""

    def __init__(self, timesteps: torch.Tensor, generator: Optional[torch.Generator]):
        self.timesteps, self.generator = timesteps, generator

    def step(self, latent: torch.Tensor, velocity: torch.Tensor, index: int) -> torch.Tensor:
        now, after = (float(self.timesteps[i]) / NUM_TRAIN_TIMESTEPS for i in (index, index + 1))
        clean = latent - velocity * now
        if after == 0:
            return clean
        noise = torch.randn(latent.shape, generator=self.generator).to(latent.device, latent.dtype)
        return (1 - after) * clean + after * noise


class UniPCFlowSolver:
    def __init__(self, timesteps: torch.Tensor):
        from diffusers import UniPCMultistepScheduler

        self.scheduler = UniPCMultistepScheduler(
            num_train_timesteps=NUM_TRAIN_TIMESTEPS, prediction_type="flow_prediction", use_flow_sigmas=True,
            flow_shift=1.0, solver_order=2, solver_type="bh2")
        self.scheduler.set_timesteps(sigmas=(timesteps[:-1] / NUM_TRAIN_TIMESTEPS).numpy())
        self.timesteps = self.scheduler.sigmas.float() * NUM_TRAIN_TIMESTEPS  # [steps + 1], ends at 0

    def step(self, latent: torch.Tensor, velocity: torch.Tensor, index: int) -> torch.Tensor:
        out = self.scheduler.step(velocity.float(), self.scheduler.timesteps[index], latent.float())
        return out.prev_sample.to(latent.dtype)


def check_step_list(step_list: Sequence[float], steps: int) -> None:
    """A distilled timestep list: one value per step, falling, within (0, 1000]."""
    values = list(step_list)
    if len(values) != steps:
        raise GenerationInputError(f"The timestep list {values} has {len(values)} entries but the sampler runs "
                                   f"{steps} steps: give one timestep per step.")
    if any(not 0 < v <= NUM_TRAIN_TIMESTEPS for v in values) or any(a <= b for a, b in zip(values, values[1:])):
        raise GenerationInputError(f"The timestep list {values} must fall strictly, within (0, "
                                   f"{NUM_TRAIN_TIMESTEPS}] (e.g. lightx2v's 1000, 750, 500, 250).")


def make_solver(name: str, steps: int, shift: float, step_list: Optional[Sequence[float]] = None,
                generator: Optional[torch.Generator] = None):
    if steps < 1:
        raise GenerationInputError(f"steps is {steps}; set at least 1 (the official default is 40).")
    if shift <= 0:
        raise GenerationInputError(f"shift is {shift}; set a positive shift (7 for 480p, 11 for 720p).")
    if step_list is not None:
        check_step_list(step_list, steps)
    timesteps = flow_timesteps(steps, shift) if step_list is None else listed_timesteps(tuple(step_list), shift)
    if name == "euler":
        return EulerFlowSolver(timesteps)
    if name == "unipc":
        return UniPCFlowSolver(timesteps)
    if name == "lcm":
        return RenoiseFlowSolver(timesteps, generator)
    raise GenerationInputError(f"Unknown sampler '{name}'; choose one of {', '.join(SOLVERS)}.")
