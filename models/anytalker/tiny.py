"""Tiny seeded AnyTalker checkpoints in the released layout (for the demo, the CLI and the tests).

The released files are `torch.save({"model": state_dict})` with the official WanModel keys and no
config (FACTS.md §2), so a tiny file must be readable the same way: width 256 gives two 128-wide
heads by the Wan rule, and text_len stays 512 (the loader's default).
"""
from __future__ import annotations

import os
from dataclasses import replace

import torch

from ..dit.config import DiTConfig
from ..dit.tiny import random_state_of
from .config import VARIANT_AF, VARIANT_LEGACY, AnyTalkerConfig
from .model import AnyTalkerDiT


def tiny_anytalker_config(variant: str = VARIANT_AF, text_dim: int = 16, clip_dim: int = 1280,
                          audio_layers: int = 12, audio_hidden: int = 768, dim: int = 256,
                          num_layers: int = 2) -> AnyTalkerConfig:
    """A 2-layer width-256 AnyTalker whose inputs fit the given text, CLIP and wav2vec widths."""
    dit = DiTConfig(dim=dim, ffn_dim=2 * dim, num_heads=dim // 128, num_layers=num_layers, text_dim=text_dim,
                    text_len=512, freq_dim=16, clip_dim=clip_dim, audio_intermediate_dim=8, audio_token_dim=32,
                    audio_tokens=4, audio_feature_dim=audio_layers * audio_hidden,
                    has_audio=variant == VARIANT_LEGACY)
    config = AnyTalkerConfig(variant=variant, dit=dit, face_dim=clip_dim)
    if variant == VARIANT_AF:
        config = replace(config, af_audio_feature_dim=audio_layers * audio_hidden, af_audio_intermediate_dim=8,
                         af_audio_tokens=4)
    return config


def random_anytalker_state_dict(config: AnyTalkerConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        model = AnyTalkerDiT(config)
    return random_state_of(model, seed)


def save_tiny_anytalker(path: str, config: AnyTalkerConfig, seed: int = 0) -> str:
    """Write a tiny checkpoint as the release ships it: {"model": state_dict} in a .pth file."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    torch.save({"model": random_anytalker_state_dict(config, seed)}, path)
    return path
