"""TeaCache as the official MultiTalk code runs it on Wan2.1-I2V-14B.

Each step it measures the blocks' time modulation e0 (the timestep embedding projected to the 6
modulation vectors; the official `use_ret_steps` variant), takes its relative L1 change since the
previous step, mean|e0 - e0_prev| / mean|e0_prev|, and rescales it by a polynomial fitted to how
much the model output changed (the official coefficients for 480p and 720p). The rescaled changes
add up per pass; while the sum stays under the threshold the pass reuses its last block residual,
otherwise it runs and the sum restarts from 0. The official runs the first 5 steps in full.
What it approximates: the blocks' residual changes little between steps whose modulation is
close, so the previous one stands in for it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch

from .base import StepCache
from .settings import StepCacheSettings

# The official polynomial coefficients (highest power first) for e0, MultiTalk's teacache_init.
COEFFICIENTS = {
    "480p": (2.57151496e+05, -3.54229917e+04, 1.40286849e+03, -1.35890334e+01, 1.32517977e-01),
    "720p": (8.10705460e+03, 2.13393892e+03, -3.72934672e+02, 1.66203073e+01, -4.17769401e-02),
}


@dataclass
class _PassState:
    previous: Optional[torch.Tensor] = None  # e0 of the previous step [1, 6, dim]
    distance: float = 0.0  # rescaled change summed since the pass last ran
    residual: Optional[torch.Tensor] = None


class TeaCache(StepCache):
    def __init__(self, settings: StepCacheSettings, steps: int, coefficients: tuple[float, ...]):
        super().__init__(settings, steps)
        self.rescale = np.poly1d(coefficients)

    def signal(self, model: Any, t: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model.time_modulation(t.reshape(1)).float()

    def decide(self, name: str, step: int, signal: torch.Tensor) -> bool:
        state = self.states.setdefault(name, _PassState())
        skip = False
        if not self.eligible(step) or state.previous is None or state.residual is None:
            state.distance = 0.0
        else:
            change = ((signal - state.previous).abs().mean() / state.previous.abs().mean()).item()
            state.distance += float(self.rescale(change))
            skip = state.distance < self.threshold
            if not skip:
                state.distance = 0.0
        state.previous = signal
        return skip
