"""What a step cache is asked for, the methods' recommended values, and the checks.

A pass may skip a step only inside [start_step, end_step); outside it always runs. A threshold of
0 never skips, so the output is the uncached one exactly; a negative one takes the method's value.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ...errors import GenerationInputError

CACHE_KINDS = ("teacache", "magcache", "easycache")
# The methods' own recommended thresholds (MultiTalk's --teacache_thresh default; the MagCache
# Wan2.1 script's --magcache_thresh default; the EasyCache Wan2.1 script's --thresh default).
DEFAULT_THRESHOLDS = {"teacache": 0.2, "magcache": 0.12, "easycache": 0.05}
MAGCACHE_RETENTION = 0.2  # MagCache's --retention_ratio: the first 20% of the steps always run
DEFAULT_MAX_SKIPS = 2  # MagCache's --magcache_K


@dataclass(frozen=True)
class StepCacheSettings:
    kind: str
    threshold: float = -1.0  # < 0: the method's recommended value; 0: never skip (exact)
    start_step: int = -1  # first step a pass may skip; < 0: the method's default
    end_step: int = -1  # skipping stops before this step; < 0: the method's default (the end)
    max_skips: int = DEFAULT_MAX_SKIPS  # MagCache's K: most consecutive steps one pass may skip


def threshold_of(settings: StepCacheSettings) -> float:
    return DEFAULT_THRESHOLDS[settings.kind] if settings.threshold < 0 else float(settings.threshold)


def skip_range(settings: StepCacheSettings, steps: int) -> tuple[int, int]:
    """[start, end) of the steps a pass may skip, with the methods' defaults filled in."""
    start = settings.start_step
    if start < 0:  # TeaCache: MultiTalk's ret_steps 5; EasyCache: its ret_steps 10; MagCache: 20%
        start = {"teacache": 5, "easycache": 10}.get(settings.kind, max(1, int(MAGCACHE_RETENTION * steps)))
    end = settings.end_step
    if end < 0:  # EasyCache always runs the last step
        end = steps - 1 if settings.kind == "easycache" else steps
    return start, min(end, steps)


def validate_cache(settings: StepCacheSettings) -> None:
    """GenerationInputError for a setting that cannot work."""
    if settings.kind not in CACHE_KINDS:
        raise GenerationInputError(f"Unknown step cache '{settings.kind}': choose one of {', '.join(CACHE_KINDS)} "
                                   "(or no cache).")
    value = settings.threshold
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise GenerationInputError(f"cache_threshold is {value!r}; use a number (0 never skips; -1 takes "
                                   f"{settings.kind}'s recommended {DEFAULT_THRESHOLDS[settings.kind]}).")
    for name in ("start_step", "end_step", "max_skips"):
        step = getattr(settings, name)
        if isinstance(step, bool) or not isinstance(step, int):
            raise GenerationInputError(f"cache {name} is {step!r}; use a whole number.")
    if 0 <= settings.end_step <= settings.start_step:
        raise GenerationInputError(f"cache end_step {settings.end_step} is not after start_step "
                                   f"{settings.start_step}: no step could be skipped (use -1 for the last step).")
    if settings.max_skips < 1:
        raise GenerationInputError(f"magcache_k is {settings.max_skips}; use at least 1 (MagCache's default is 2).")


def coefficient_set(height: int, width: int) -> str:
    """"720p" for frames nearer 1280x720 than 832x480 in area, else "480p" (the calibrated sets)."""
    return "720p" if height * width > (480 * 832 + 720 * 1280) / 2 else "480p"
