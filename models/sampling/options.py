"""Sampler options beyond the sampler's own settings: a few-step preset, a per-step audio guidance
schedule and a step cache, applied over SamplerSettings before a run."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

from ..errors import GenerationInputError
from .presets import apply_preset, check_preset
from .step_cache import StepCacheSettings, validate_cache


@dataclass(frozen=True)
class SamplerOptions:
    preset: str = "none"
    audio_schedule: Optional[tuple[float, ...]] = None  # audio scale per step; None: audio_scale throughout
    cache: Optional[StepCacheSettings] = None


def parse_schedule(text: str) -> Optional[tuple[float, ...]]:
    """"4, 4, 2, 1" -> (4.0, 4.0, 2.0, 1.0); empty -> None."""
    parts = [part.strip() for part in text.replace(";", ",").split(",")]
    if not any(parts):
        return None
    values = []
    for part in parts:
        try:
            values.append(float(part))
        except ValueError:
            raise GenerationInputError(f"audio_scale_schedule has '{part}', not a number: give one audio scale "
                                       "per step, separated by commas (e.g. 4, 4, 2, 1).") from None
    return tuple(values)


def validate_options(options: SamplerOptions) -> None:
    check_preset(options.preset)
    if options.cache is not None:
        validate_cache(options.cache)


def apply_options(settings, options: Optional[SamplerOptions]) -> tuple:
    """(settings with the options applied, notes saying what they changed)."""
    if options is None:
        return settings, []
    settings, note = apply_preset(settings, options.preset)
    notes = [note] if note else []
    if options.audio_schedule is not None:
        settings = dataclasses.replace(settings, audio_schedule=options.audio_schedule)
        values = ", ".join(f"{v:g}" for v in options.audio_schedule)
        notes.append(f"Audio guidance per step: {values} (steps at 1 skip the audio-free pass).")
    if options.cache is not None:
        settings = dataclasses.replace(settings, cache=options.cache)
    return settings, notes
