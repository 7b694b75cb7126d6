"""MultiTalk Sampler Options: few-step presets for distilled LoRAs, a per-step audio guidance
schedule and step caching (TeaCache, MagCache, EasyCache), for the sampler's `options` input."""
from __future__ import annotations

import logging

from ..models.sampling.options import SamplerOptions, parse_schedule, validate_options
from ..models.sampling.presets import PRESET_CHOICES
from ..models.sampling.step_cache import CACHE_KINDS, StepCacheSettings
from . import comfy_bridge

CATEGORY = "MultiTalk/sampling"
logger = logging.getLogger("MultiTalk")


def _inputs() -> dict:
    return {"required": {
        "preset": (list(PRESET_CHOICES), {"default": "none", "tooltip": (
            "Settings for a step-distilled LoRA (apply it with MultiTalk LoRA first). lightx2v_4step: the 4 "
            "timesteps it was trained on (1000, 750, 500, 250, shift 5) with its re-noising sampler; "
            "lightx2v_4step_euler: the same timesteps, Euler update; fusionix_8step: 8 steps, shift 2. All use "
            "text scale 1 (two-pass audio guidance) and audio scale 2, as the MultiTalk and InfiniteTalk authors "
            "give for LoRAs. They replace the sampler's steps, shift, scales and sampler. none: keep those.")}),
        "audio_scale_schedule": ("STRING", {"default": "", "tooltip": (
            "Audio guidance per step, comma-separated, one value per step (e.g. 2, 2, 1, 1 for 4 steps); "
            "empty: the sampler's (or the preset's) audio_scale at every step. At 1 the audio-free pass is "
            "not run that step.")}),
        "cache": (["off"] + list(CACHE_KINDS), {"default": "off", "tooltip": (
            "Skip a guidance pass's model work at steps where it is predicted to change little, reusing what "
            "that pass kept (each pass has its own cache). teacache: MultiTalk's official TeaCache (timestep "
            "modulation change, 480p/720p coefficients). magcache: calibrated residual magnitude ratios. "
            "easycache: the model output's change rate. An approximation: worth it at 20+ steps, not at 4-8.")}),
        "cache_threshold": ("FLOAT", {"default": -1.0, "min": -1.0, "max": 10.0, "step": 0.01, "tooltip": (
            "Higher skips more (faster, less faithful). -1: the method's recommended value (TeaCache 0.2, "
            "MagCache 0.12, EasyCache 0.05). 0: never skip (identical to no cache).")}),
        "cache_start_step": ("INT", {"default": -1, "min": -1, "max": 1000, "tooltip": (
            "First step a pass may skip; earlier steps always run. -1: the method's default (TeaCache 5, "
            "EasyCache 10, MagCache the first 20% of the steps).")}),
        "cache_end_step": ("INT", {"default": -1, "min": -1, "max": 1000, "tooltip": (
            "Skipping stops before this step. -1: the method's default (the end; EasyCache always runs the "
            "last step).")}),
        "magcache_k": ("INT", {"default": 2, "min": 1, "max": 20, "tooltip": (
            "MagCache only: the most steps in a row one pass may skip (MagCache's K).")}),
    }}


class MultiTalkSamplerOptions:
    DESCRIPTION = ("Few-step presets for distilled LoRAs (lightx2v, FusioniX), a per-step audio guidance schedule "
                   "and step caching (TeaCache, MagCache, EasyCache) for MultiTalk Sampler. The sampler's notes "
                   "then say how many steps each guidance pass skipped.")
    CATEGORY = CATEGORY
    FUNCTION = "build"
    RETURN_TYPES = ("MULTITALK_SAMPLER_OPTIONS",)
    RETURN_NAMES = ("options",)
    OUTPUT_TOOLTIPS = ("Connect to MultiTalk Sampler's options input.",)

    @classmethod
    def INPUT_TYPES(cls):
        return _inputs()

    def build(self, preset: str, audio_scale_schedule: str, cache: str, cache_threshold: float,
              cache_start_step: int, cache_end_step: int, magcache_k: int):
        steps = None if cache == "off" else StepCacheSettings(cache, float(cache_threshold), int(cache_start_step),
                                                              int(cache_end_step), int(magcache_k))
        options = SamplerOptions(preset, parse_schedule(audio_scale_schedule), steps)
        validate_options(options)  # a bad value stops here, before the sampler starts
        lines = [f"preset: {preset}", f"cache: {cache}"]
        if options.audio_schedule is not None:
            lines.append(f"audio guidance per step: {', '.join(f'{v:g}' for v in options.audio_schedule)}")
        logger.info("MultiTalkSamplerOptions: %s", "; ".join(lines))
        return {"ui": comfy_bridge.notes_ui(lines), "result": (options,)}


NODE_CLASS_MAPPINGS = {"MultiTalkSamplerOptions": MultiTalkSamplerOptions}
NODE_DISPLAY_NAME_MAPPINGS = {"MultiTalkSamplerOptions": "MultiTalk Sampler Options"}
