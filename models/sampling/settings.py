"""Sampler settings and their checks, so a bad value stops the run before any model work with
an error that names it and says what to use instead."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from ..dit.routing import ROUTING_MODES
from ..errors import GenerationInputError
from .plan import MODES, validate_window
from .solvers import make_solver
from .step_cache import StepCacheSettings, validate_cache

MAX_SEED = 2**64 - 1  # torch generators take 64-bit seeds


@dataclass
class SamplerSettings:
    steps: int = 40
    shift: float = 7.0  # official CLI: 7 for 480p, 11 for 720p
    text_scale: float = 5.0
    audio_scale: float = 4.0
    seed: int = 0
    solver: str = "euler"
    apg: bool = False
    apg_momentum: float = -0.75
    apg_norm_threshold: float = 55.0
    mode: str = "multitalk"  # "single" | "multitalk" | "infinitetalk"
    window: int = 81
    motion_frames: int = 25
    colour_strength: float = 0.0
    max_frames: int = 0  # 0: as long as the audio
    routing: str = "lrope"
    batch_guidance: bool = True  # all guidance passes in one batch (faster, more memory)
    step_list: Optional[tuple[float, ...]] = None  # a distilled LoRA's timesteps (unshifted); None: linspace
    audio_schedule: Optional[tuple[float, ...]] = None  # audio scale per step; None: audio_scale throughout
    cache: Optional[StepCacheSettings] = None  # TeaCache / MagCache / EasyCache; None: every pass every step

    def audio_scale_at(self, step: int) -> float:
        return self.audio_scale if self.audio_schedule is None else float(self.audio_schedule[step])


def _check_choice(value, choices: tuple, what: str) -> None:
    if value not in choices:
        raise GenerationInputError(f"Unknown {what} '{value}': choose one of {', '.join(choices)}.")


def _check_number(value, name: str, low: float, high: float, hint: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not low <= value <= high:
        raise GenerationInputError(f"{name} is {value!r}; set a number from {low:g} to {high:g} ({hint}).")


def validate_settings(settings: SamplerSettings) -> None:
    """Raise GenerationInputError for the first setting that cannot work."""
    _check_choice(settings.mode, MODES, "long-video mode")
    _check_choice(settings.routing, ROUTING_MODES, "speaker routing")
    seed = settings.seed
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise GenerationInputError(f"seed is {seed!r}; use a whole number from 0 to {MAX_SEED} (2^64 - 1).")
    _check_number(settings.text_scale, "text_scale", 0.0, 100.0, "official 5; 1 for distilled LoRAs")
    _check_number(settings.audio_scale, "audio_scale", 0.0, 100.0, "official 4")
    _check_number(settings.colour_strength, "color_correction", 0.0, 1.0, "0 = off, 1 = the official default")
    _check_number(settings.apg_momentum, "APG momentum", -1.0, 1.0, "official -0.75")
    _check_number(settings.apg_norm_threshold, "APG norm threshold", 0.0, 1e6, "official 55")
    if isinstance(settings.max_frames, bool) or not isinstance(settings.max_frames, int) or settings.max_frames < 0:
        raise GenerationInputError(f"max_frames is {settings.max_frames!r}; use 0 (as long as the audio) or a "
                                   "positive frame count.")
    _check_number(settings.shift, "shift", 1e-6, 1e4, "7 for 480p, 11 for 720p")
    make_solver(settings.solver, settings.steps, settings.shift, settings.step_list)
    validate_window(settings.window, settings.motion_frames, settings.mode)
    _check_schedule(settings)
    if settings.cache is not None:
        validate_cache(settings.cache)


def _check_schedule(settings: SamplerSettings) -> None:
    schedule = settings.audio_schedule
    if schedule is None:
        return
    if len(schedule) != settings.steps:
        raise GenerationInputError(f"audio_scale_schedule has {len(schedule)} values but the sampler runs "
                                   f"{settings.steps} steps: give one audio scale per step (or leave it empty).")
    for value in schedule:
        _check_number(value, "an audio_scale_schedule value", 0.0, 100.0, "official 4; 2 with distilled LoRAs")
