"""MagCache (Ma et al. 2025) with its calibration for Wan2.1-I2V-14B.

The ratio of the block residual's magnitude at a step to the previous step's, averaged over
tokens, follows nearly the same curve for every prompt; MagCache measured it once per model (40
steps, conditional and unconditional pass). A skipping pass multiplies the ratios of the steps it
skips; the error |1 - product| adds up, and the pass runs again (everything reset) when the sum
reaches the threshold or after K skipped steps in a row. The first 20% of the steps run in full.
Other step counts take the nearest calibrated step, as the MagCache code does; the conditional
pass uses the conditional curve, the other guidance passes the unconditional one.
What it approximates: a skipped pass reuses its last block residual as it was; the calibrated
ratios say how far the true residual's magnitude has drifted from it, and bound that drift.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np
import torch

from .base import StepCache
from .settings import StepCacheSettings

# MagCache4Wan2.1's mag_ratios for Wan2.1-I2V-14B (its calibration, sdpa), per step of 40:
# (conditional, unconditional); the first entry is the padding 1.0.
RATIOS = {
    "480p": (
        (1.0, 0.98783, 0.97559, 0.98311, 0.98202, 0.9888, 0.98762, 0.98957, 0.99052, 0.99383, 0.98857, 0.99065,
         0.98845, 0.99057, 0.98957, 0.98601, 0.98823, 0.98756, 0.98808, 0.98721, 0.98571, 0.98543, 0.98157, 0.98411,
         0.97952, 0.98149, 0.9774, 0.97825, 0.97355, 0.97085, 0.97056, 0.96588, 0.96113, 0.9567, 0.94961, 0.93973,
         0.93217, 0.91878, 0.90955, 0.92617),
        (1.0, 0.98993, 0.97593, 0.98319, 0.98225, 0.98878, 0.98759, 0.98971, 0.99043, 0.99384, 0.9886, 0.99068,
         0.98847, 0.99057, 0.98961, 0.9861, 0.98823, 0.98759, 0.98814, 0.98724, 0.98572, 0.98544, 0.98165, 0.98413,
         0.97953, 0.9815, 0.97742, 0.97826, 0.97361, 0.97087, 0.97055, 0.96587, 0.96124, 0.95681, 0.94969, 0.93988,
         0.93224, 0.91896, 0.90954, 0.92616)),
    "720p": (
        (1.0, 0.99428, 0.98588, 0.98273, 0.99018, 0.98911, 0.98646, 0.99454, 0.9891, 0.99124, 0.99102, 0.99215,
         0.99515, 0.99576, 0.99068, 0.99097, 0.99166, 0.99041, 0.99201, 0.99101, 0.98599, 0.98845, 0.98848, 0.98862,
         0.98718, 0.98497, 0.98264, 0.98389, 0.97938, 0.97535, 0.97498, 0.973, 0.96827, 0.96261, 0.95335, 0.94649,
         0.93397, 0.91636, 0.89088, 0.8679),
        (1.0, 0.99498, 0.98621, 0.98281, 0.99023, 0.98917, 0.98652, 0.99456, 0.98909, 0.99127, 0.99103, 0.99212,
         0.99515, 0.99572, 0.99072, 0.99097, 0.99169, 0.99042, 0.99198, 0.99101, 0.98603, 0.98844, 0.98851, 0.98857,
         0.98719, 0.98497, 0.98263, 0.98393, 0.9794, 0.97536, 0.97499, 0.97301, 0.96828, 0.96263, 0.9534, 0.94655,
         0.93414, 0.9165, 0.89109, 0.86768)),
}


def nearest_ratios(ratios: Sequence[float], steps: int) -> list[float]:
    """The calibrated curve at `steps` steps: entry round(i * (n - 1) / (steps - 1)) for step i."""
    if steps == 1:
        return [ratios[-1]]
    scale = (len(ratios) - 1) / (steps - 1)
    return [ratios[int(index)] for index in np.round(np.arange(steps) * scale)]


@dataclass
class _PassState:
    ratio: float = 1.0  # product of the skipped steps' ratios
    error: float = 0.0  # sum of |1 - ratio| over them
    skips: int = 0  # steps skipped in a row
    residual: Optional[torch.Tensor] = None


class MagCache(StepCache):
    def __init__(self, settings: StepCacheSettings, steps: int, ratios: tuple[Sequence[float], Sequence[float]]):
        super().__init__(settings, steps)
        self.curves = {"cond": nearest_ratios(ratios[0], steps), "other": nearest_ratios(ratios[1], steps)}
        self.max_skips = settings.max_skips

    def decide(self, name: str, step: int, signal: Any) -> bool:
        state = self.states.setdefault(name, _PassState())
        if self.eligible(step) and state.residual is not None:
            state.ratio *= self.curves["cond" if name == "cond" else "other"][step]
            state.skips += 1
            state.error += abs(1.0 - state.ratio)
            if state.error < self.threshold and state.skips <= self.max_skips:
                return True
        state.ratio, state.error, state.skips = 1.0, 0.0, 0
        return False
