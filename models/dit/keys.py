"""Key names of the DiT's weights: the audio layers, and wrapper prefixes of other programs' saves."""
from __future__ import annotations

import re
from typing import Iterable

# Prefixes that wrap the released names in ComfyUI saves, ComfyUI repacks and training wrappers.
KNOWN_PREFIXES = ("model.diffusion_model.", "diffusion_model.", "model.", "module.", "transformer.")
ANCHOR_KEYS = ("patch_embedding.weight", "audio_proj.proj1.weight", "blocks.0.self_attn.q.weight",
               "blocks.0.audio_cross_attn.q_linear.weight", "head.head.weight")
_AUDIO_KEY = re.compile(r"^(audio_proj\.|blocks\.\d+\.(norm_x|audio_cross_attn)\.)")


def is_audio_key(key: str) -> bool:
    """The MultiTalk/InfiniteTalk audio layers: audio_proj.*, blocks.*.norm_x.*, blocks.*.audio_cross_attn.*"""
    return bool(_AUDIO_KEY.match(key))


def wrapper_prefix(keys: Iterable[str]) -> str:
    """The prefix (e.g. `model.diffusion_model.`) the released names sit under, or ''."""
    keys = set(keys)
    for prefix in KNOWN_PREFIXES:
        if any(prefix + anchor in keys for anchor in ANCHOR_KEYS):
            return prefix
    return ""


def describe_keys(keys: Iterable[str], limit: int = 4) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:limit])
    return f"{len(keys)} ({shown}{', ...' if len(keys) > limit else ''})"
