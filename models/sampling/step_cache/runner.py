"""A step's guidance passes through a step cache: each pass decides for itself; the passes that
run go through the model together (their block residuals kept, one per pass); the others are
rebuilt from what each kept, in one light model call (blocks skipped) or none (EasyCache).

`call(names, shortcut)` runs the model for those passes, in that order, and returns
{name: velocity [1, 16, T, h, w]}; with batching off or memory-bound groups the model may take
the items in several groups, always in order, so the shortcuts walk the names as items arrive.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Optional, Sequence

import torch

from ...errors import GenerationInputError
from .base import NAMES, StepCache
from .easycache import EasyCache
from .magcache import RATIOS, MagCache
from .settings import StepCacheSettings, coefficient_set, validate_cache
from .teacache import COEFFICIENTS, TeaCache

PassCall = Callable[[Sequence[str], Optional[Callable]], dict]


class _Keep:
    """Runs the blocks and keeps each item's residual (output - input tokens) for its pass."""

    def __init__(self, cache: StepCache, names: Sequence[str]):
        self.cache, self.names, self.offset = cache, list(names), 0

    def __call__(self, tokens: torch.Tensor, run_blocks: Callable) -> torch.Tensor:
        out = run_blocks(tokens)  # returned as is: a pass that runs gives the uncached numbers
        for j in range(tokens.shape[0]):
            self.cache.keep_residual(self.names[self.offset + j], out[j:j + 1] - tokens[j:j + 1])
        self.offset += tokens.shape[0]
        return out


class _Reuse:
    """In place of the blocks: each item's input tokens plus its pass's kept residual."""

    def __init__(self, cache: StepCache, names: Sequence[str]):
        self.cache, self.names, self.offset = cache, list(names), 0

    def __call__(self, tokens: torch.Tensor, run_blocks: Callable) -> torch.Tensor:
        names = self.names[self.offset:self.offset + tokens.shape[0]]
        self.offset += tokens.shape[0]
        residual = torch.cat([self.cache.residual(name) for name in names])
        return tokens + residual.to(tokens.device, tokens.dtype)


def cached_predictions(cache: StepCache, step: int, t: torch.Tensor, latent: torch.Tensor,
                       names: Sequence[str], call: PassCall, model: Any) -> dict:
    """{name: velocity} of this step's passes, each run or reused as its cache state decides."""
    signal = cache.signal(model, t, latent)
    skip = [name for name in names if cache.decide(name, step, signal)]
    run = [name for name in names if name not in skip]
    preds: dict = {}
    if run:
        preds.update(call(run, _Keep(cache, run) if cache.level == "blocks" else None))
        if isinstance(cache, EasyCache):
            for name in run:
                cache.keep_output(name, latent, preds[name])
    if skip and cache.level == "blocks":
        preds.update(call(skip, _Reuse(cache, skip)))
    elif skip:
        preds.update({name: cache.reuse(name, latent) for name in skip})
    for name in names:
        cache.count(name, name in skip)
    return preds


def make_step_cache(settings: Optional[StepCacheSettings], steps: int, height: int, width: int,
                    model: Any) -> Optional[StepCache]:
    """The cache a run asks for (None: none), with the calibration nearest its frame size."""
    if settings is None:
        return None
    validate_cache(settings)
    calibration = coefficient_set(height, width)
    if settings.kind == "easycache":
        return EasyCache(settings, steps)
    forward = getattr(model, "forward", model)
    if "shortcut" not in inspect.signature(forward).parameters or not hasattr(model, "time_modulation"):
        raise GenerationInputError(f"{NAMES[settings.kind]} reuses the transformer blocks' residual, which this "
                                   f"model ({type(model).__name__}) does not expose: use EasyCache with it.")
    if settings.kind == "teacache":
        return TeaCache(settings, steps, COEFFICIENTS[calibration])
    return MagCache(settings, steps, RATIOS[calibration])
