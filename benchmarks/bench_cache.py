"""Step caching in bench_gpu.py's (c): the steps each guidance pass skips under MagCache, whose
decisions come from its calibrated ratios alone (TeaCache and EasyCache decide from the model's
own numbers, which random weights do not stand for), and the light call a step costs when every
pass skips: patch embedding, text/CLIP/audio context and head, the blocks replaced by the kept
residual (here zeros of the same shape)."""
from __future__ import annotations

import torch

from comfyui_multitalk.models.sampling.step_cache import StepCacheSettings, make_step_cache

PASS_NAMES = {3: ("cond", "no_text", "uncond"), 2: ("cond", "no_audio"), 1: ("cond",)}
CACHES = ("none", "magcache")


def cache_plan(kind: str, threshold: float, steps: int, passes: int, model) -> tuple[int, int, str]:
    """(steps where some pass runs the blocks, steps where every pass skips, the sampler's note)."""
    cache = make_step_cache(StepCacheSettings(kind, threshold), steps, 480, 832, model)
    cache.new_window()
    names, full = PASS_NAMES[passes], 0
    for step in range(steps):
        skipped = [name for name in names if cache.decide(name, step, None)]
        for name in names:
            cache.count(name, name in skipped)
            if name not in skipped:
                cache.keep_residual(name, torch.zeros(1))  # stands for the residual the pass keeps
        full += len(skipped) < len(names)
    return full, steps - full, cache.note()


def reuse_blocks(tokens: torch.Tensor, run_blocks) -> torch.Tensor:
    """The shortcut of a skipped step: input tokens plus a residual, no block runs."""
    return tokens + torch.zeros_like(tokens)
