"""What every step cache shares: one state per guidance pass (reset per window), the steps a pass
may skip, and the count of skipped steps per pass for the sampler's notes.

A cache works at one of two levels. "blocks" (TeaCache, MagCache): a skipped pass reuses the
residual its transformer blocks added last time it ran (patch embedding and head still run).
"output" (EasyCache): a skipped pass reuses the change its whole model call made to the latent
(output - input) last time, with no model call at all.
"""
from __future__ import annotations

from typing import Any, Optional

import torch

from .settings import StepCacheSettings, skip_range, threshold_of

NAMES = {"teacache": "TeaCache", "magcache": "MagCache", "easycache": "EasyCache"}


class StepCache:
    level = "blocks"  # "blocks" or "output"

    def __init__(self, settings: StepCacheSettings, steps: int):
        self.settings, self.steps = settings, steps
        self.threshold = threshold_of(settings)
        self.start, self.end = skip_range(settings, steps)
        self.states: dict[str, Any] = {}
        self.skipped: dict[str, int] = {}
        self.seen: dict[str, int] = {}

    def new_window(self) -> None:
        """Every window samples from fresh noise: nothing carries over."""
        self.states = {}

    def eligible(self, step: int) -> bool:
        return self.threshold > 0 and self.start <= step < self.end

    def signal(self, model: Any, t: torch.Tensor, latent: torch.Tensor) -> Any:
        """What the method measures at this step, shared by the passes (computed once)."""
        return None

    def decide(self, name: str, step: int, signal: Any) -> bool:
        """True: pass `name` skips this step. Updates the pass's running measure."""
        raise NotImplementedError

    def count(self, name: str, skipped: bool) -> None:
        self.seen[name] = self.seen.get(name, 0) + 1
        self.skipped[name] = self.skipped.get(name, 0) + int(skipped)

    # --- "blocks" level -------------------------------------------------------------------------
    def keep_residual(self, name: str, residual: torch.Tensor) -> None:
        self.states[name].residual = residual

    def residual(self, name: str) -> Optional[torch.Tensor]:
        state = self.states.get(name)
        return None if state is None else state.residual

    def note(self) -> str:
        """One line for the node: the method, its settings, and the steps each pass skipped."""
        counts = ", ".join(f"{name} {self.skipped.get(name, 0)}/{seen}" for name, seen in self.seen.items())
        where = f"steps {self.start}-{self.end - 1}" if self.end > self.start else "no step"
        if self.threshold <= 0:
            return f"{NAMES[self.settings.kind]}: threshold 0, nothing skipped (output as without a cache)."
        return (f"{NAMES[self.settings.kind]} (threshold {self.threshold:g}, may skip {where}): skipped steps per "
                f"pass, over all windows: {counts or 'none run'}.")
