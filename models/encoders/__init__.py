"""Text encoder (umt5-xxl), CLIP vision (ViT-H/14) and the Wan2.1 VAE, loaded from real files.

Each loader reads the model's config off the weights, accepts ComfyUI's files and the
original Wan release files, and returns an object that matches ComfyUI's native type
(CONDITIONING tensors, CLIP_VISION / CLIP_VISION_OUTPUT, VAE).
"""
from .clip_vision import ClipVisionOutput, WanClipVision, load_clip_vision, preprocess
from .text_encoder import DEFAULT_NEGATIVE_PROMPT, WanTextEncoder, load_text_encoder
from .tokenizer import MAX_TOKENS, PromptTokenizer
from .vae import (
    LATENT_CHANNELS,
    SPATIAL_COMPRESSION,
    TEMPORAL_COMPRESSION,
    WanVAE,
    check_latent,
    denormalize_wan_latents,
    latent_frames_for,
    normalize_wan_latents,
    pixel_frames_for,
)
from .vae_loader import load_autoencoder, load_vae


__all__ = [
    "ClipVisionOutput", "WanClipVision", "load_clip_vision", "preprocess",
    "DEFAULT_NEGATIVE_PROMPT", "WanTextEncoder", "load_text_encoder",
    "MAX_TOKENS", "PromptTokenizer",
    "LATENT_CHANNELS", "SPATIAL_COMPRESSION", "TEMPORAL_COMPRESSION", "WanVAE", "check_latent",
    "normalize_wan_latents", "denormalize_wan_latents", "latent_frames_for", "pixel_frames_for",
    "load_autoencoder", "load_vae",
]
