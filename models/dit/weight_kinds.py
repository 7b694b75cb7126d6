"""Telling what a weights file is, to say so when it is not what the user meant to load."""
from __future__ import annotations

from typing import Mapping, Optional

import torch

# (a key that only that kind of file has, what to call it)
_KIND_MARKERS = (
    ("condition_embedder.time_embedder.linear_1.weight", "a diffusers-format Wan transformer (use the original "
                                                         "layout file, e.g. ComfyUI's repackaged one)"),
    ("blocks.0.attn1.to_q.weight", "a diffusers-format transformer"),
    ("encoder.block.0.layer.0.SelfAttention.q.weight", "a T5 / umt5 text encoder (models/text_encoders)"),
    ("token_embedding.weight", "a Wan T5 text encoder (models/text_encoders)"),
    ("text_model.encoder.layers.0.self_attn.q_proj.weight", "a CLIP text encoder"),
    ("vision_model.encoder.layers.0.self_attn.q_proj.weight", "a CLIP vision model (models/clip_vision)"),
    ("visual.transformer.0.attn.to_qkv.weight", "an open-CLIP vision model (models/clip_vision)"),
    ("decoder.conv1.weight", "a VAE (models/vae)"),
    ("decoder.conv_in.weight", "a VAE (models/vae)"),
    ("feature_projection.projection.weight", "a wav2vec2 audio encoder (models/audio_encoders)"),
    ("wav2vec2.feature_projection.projection.weight", "a wav2vec2 audio encoder (models/audio_encoders)"),
)


def guess_weight_kind(sd: Mapping[str, torch.Tensor]) -> str:
    for marker, kind in _KIND_MARKERS:
        if marker in sd:
            return kind
    if any("lora" in k.lower() for k in list(sd)[:200]):
        return "a LoRA (apply it to a loaded model instead)"
    return "an unknown model"


def base_model_problem(sd: Mapping[str, torch.Tensor], name: str) -> Optional[str]:
    """Why these base weights cannot be a Wan2.1-I2V DiT (with matching audio layers), or None."""
    dim, in_dim = sd["patch_embedding.weight"].shape[:2]
    family = {1536: "a Wan 1.3B model", 5120: "a Wan 14B model", 3072: "a Wan2.2 5B model"}.get(dim, f"a width-{dim} model")
    if in_dim == 16 or "blocks.0.cross_attn.k_img.weight" not in sd and "img_emb.proj.0.weight" not in sd:
        kind = "text-to-video" if in_dim == 16 else "image-to-video model without CLIP image input (Wan2.2?)"
        return (f"'{name}' is {family} for {kind} (input channels {in_dim}); MultiTalk needs the "
                "Wan2.1-I2V-14B image-to-video model (480p or 720p).")
    if "img_emb.proj.0.weight" not in sd or "head.head.weight" not in sd:
        return f"'{name}' lacks the image projection or the output head: a partial or truncated file?"
    kv = sd.get("blocks.0.audio_cross_attn.kv_linear.weight")
    if kv is not None and kv.shape[0] != 2 * dim:
        audio_dim = kv.shape[0] // 2
        return (f"The audio layers were made for a width-{audio_dim} model but '{name}' is {family} "
                f"(width {dim}); use the Wan2.1-I2V-14B base model with multitalk.safetensors.")
    return None
