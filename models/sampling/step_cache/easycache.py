"""EasyCache (Zhou et al. 2025, "Less is Enough"), as its Wan2.1 code runs it, per guidance pass.

It caches the whole model call: the transformation out - x (velocity minus the latent it was
given). Each time a pass runs it measures its transformation rate k = mean|out - out_prev| /
mean|x - x_prev| between its last two runs. At a later step it predicts the relative change of
its output from the latent's change since the previous step, k * mean|x - x_prev| / mean|out_last|,
and adds it up; while the sum stays under the threshold the pass returns x + (its last out - x),
without calling the model, otherwise it runs and the sum restarts from 0. The official runs the
first 10 steps and the last one in full, and decides on the conditional pass for all passes;
here every pass decides for itself with its own k.
What it approximates: the model's output moving in step with its input (a locally constant
rate k), so the transformation of the last run still holds.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch

from .base import StepCache


@dataclass
class _PassState:
    last_input: Optional[torch.Tensor] = None  # the latent at the previous step
    run_input: Optional[torch.Tensor] = None  # the latent when the pass last ran
    run_output: Optional[torch.Tensor] = None  # its output then
    rate: Optional[float] = None  # k
    error: float = 0.0


class EasyCache(StepCache):
    level = "output"

    def signal(self, model: Any, t: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        return latent

    def decide(self, name: str, step: int, signal: torch.Tensor) -> bool:
        state = self.states.setdefault(name, _PassState())
        skip = False
        if not self.eligible(step):
            state.error = 0.0
        elif state.last_input is not None and state.run_output is not None and state.rate is not None:
            change = (signal - state.last_input).abs().mean().item()
            state.error += state.rate * change / state.run_output.abs().mean().item()
            skip = state.error < self.threshold
            if not skip:
                state.error = 0.0
        state.last_input = signal
        return skip

    def keep_output(self, name: str, latent: torch.Tensor, output: torch.Tensor) -> None:
        state = self.states[name]
        if state.run_output is not None and state.run_input is not None:
            moved = (latent - state.run_input).abs().mean().item()
            state.rate = (output - state.run_output).abs().mean().item() / moved if moved > 0 else None
        state.run_input, state.run_output = latent, output

    def reuse(self, name: str, latent: torch.Tensor) -> torch.Tensor:
        state = self.states[name]
        return latent + (state.run_output - state.run_input)
