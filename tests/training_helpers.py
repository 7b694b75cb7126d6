"""Shared pieces of the training tests: the tiny training DiT and a synthetic cache of 9-frame
windows (4x4 latents)."""
from __future__ import annotations

from comfyui_multitalk.models import load_dit
from comfyui_multitalk.models.dit.tiny import random_dit_state_dict
from comfyui_multitalk.models.training import load_cache
from comfyui_multitalk.models.training.tiny import tiny_training_dit_config, write_synthetic_cache


def synthetic_cache(folder: str, windows: int = 4, **extra):
    return load_cache(write_synthetic_cache(folder, windows=windows, frames=9, latent_size=(4, 4), **extra))


def tiny_training_model(seed: int = 1):
    config = tiny_training_dit_config()
    return load_dit(random_dit_state_dict(config, seed), num_heads=config.num_heads, text_len=config.text_len)
