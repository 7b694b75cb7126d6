"""Recognise what a weights file is from its key names, for "wrong kind of file" errors."""
from __future__ import annotations

from typing import Iterable

# (substring of some key, human description). First match wins, so specific markers go first.
_KINDS: tuple[tuple[str, str], ...] = (
    ("model.diffusion_model.", "a diffusion model checkpoint (DiT/UNet)"),
    ("first_stage_model.", "a Stable Diffusion checkpoint with a built-in VAE"),
    ("blocks.0.self_attn.q.weight", "a Wan diffusion model (DiT)"),
    ("audio_proj.", "MultiTalk/InfiniteTalk audio-adapter weights"),
    ("blocks.0.audio_cross_attn.", "MultiTalk/InfiniteTalk audio-adapter weights"),
    ("feature_extractor.conv_layers.", "a wav2vec2 audio encoder"),
    ("decoder.upsamples.0.upsamples.0.", "the Wan2.2 VAE (48 latent channels)"),
    ("decoder.upsamples.0.residual.", "the Wan2.1 VAE"),
    ("decoder.up_blocks.0.resnets.0.norm1.gamma", "the Wan VAE (diffusers layout)"),
    ("encoder.down.0.block.0.", "a Stable Diffusion / Flux style VAE"),
    ("encoder.down_blocks.0.resnets.0.norm1.weight", "a Stable Diffusion style VAE (diffusers layout)"),
    ("text_model.encoder.layers.", "a CLIP text encoder (e.g. CLIP-L/G for SD or Flux)"),
    ("vision_model.encoder.layers.", "a CLIP vision encoder (Hugging Face layout)"),
    ("visual.transformer.", "an open_clip CLIP model (with a visual tower)"),
    ("encoder.block.0.layer.0.SelfAttention.", "a T5-family text encoder (Hugging Face layout)"),
    ("blocks.0.attn.q.weight", "a Wan T5 text encoder (original layout)"),
    ("model.layers.0.self_attn.", "an LLM-style text encoder (Llama/Qwen/Gemma)"),
)


def describe(keys: Iterable[str]) -> str:
    """A short description of what the keys look like ('an unknown file' if nothing matches)."""
    keys = list(keys)
    for marker, name in _KINDS:
        if any(marker in k for k in keys):
            return name
    return "an unknown kind of weights file"


def wrong_kind(path: str, keys: Iterable[str], expected: str, hint: str) -> str:
    """The message for a file that is not what a loader expects."""
    return (
        f"'{path}' looks like {describe(keys)}, but {expected} is expected here. {hint}"
    )
