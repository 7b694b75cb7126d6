"""CLIP vision weights: the original Wan/open_clip layout -> Hugging Face names, and the config.

Canonical form here is the Hugging Face layout with the `vision_model.` prefix (as in
ComfyUI's clip_vision_h.safetensors) plus an optional `visual_projection.weight`.
"""
from __future__ import annotations

import math
import re

import torch

from ..errors import EncoderInputError
from ..weights import dequantized
from .kinds import wrong_kind

_HF_MARKER = "embeddings.patch_embedding.weight"
_OPEN_CLIP_MARKER = "visual.patch_embedding.weight"
_VM = "vision_model."
_PROJECTION = "visual_projection.weight"
_HF_TOP_MODULES = {"embeddings", "pre_layrnorm", "encoder", "post_layernorm"}
# Original block names (after "visual.transformer.{i}.") -> HF (after "encoder.layers.{i}.").
_BLOCK_NAMES = {
    "norm1": "layer_norm1",
    "norm2": "layer_norm2",
    "attn.proj": "self_attn.out_proj",
    "mlp.0": "mlp.fc1",
    "mlp.2": "mlp.fc2",
}
_BLOCK_RE = re.compile(r"^visual\.transformer\.(\d+)\.(.+)\.(weight|bias)$")
_TOP_NAMES = {
    "visual.patch_embedding.weight": "embeddings.patch_embedding.weight",
    "visual.pre_norm.weight": "pre_layrnorm.weight",
    "visual.pre_norm.bias": "pre_layrnorm.bias",
    "visual.post_norm.weight": "post_layernorm.weight",
    "visual.post_norm.bias": "post_layernorm.bias",
}
# Heads of the released CLIP widths (not readable off the weights); others assume 64 per head.
_KNOWN_HEADS = {768: 12, 1024: 16, 1280: 16, 1664: 16}


def _open_clip_tensors(key: str, t: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """One original `visual.*` tensor -> canonical (name, tensor) pairs ([] = not needed)."""
    if key in _TOP_NAMES:
        return [(_VM + _TOP_NAMES[key], t)]
    if key == "visual.cls_embedding":  # [1, 1, D] -> [D]
        return [(_VM + "embeddings.class_embedding", t.reshape(-1))]
    if key == "visual.pos_embedding":  # [1, N, D] -> [N, D]
        return [(_VM + "embeddings.position_embedding.weight", t[0])]
    if key == "visual.head":  # token-pool projection [D, out], applied as x @ head
        return [(_PROJECTION, t.t().contiguous())]
    match = _BLOCK_RE.match(key)
    if not match:
        return []
    layer, name, kind = match.groups()
    base = f"{_VM}encoder.layers.{layer}."
    if name == "attn.to_qkv":  # fused [3D, ...] -> q, k, v thirds
        q, k, v = t.chunk(3, dim=0)
        return [(f"{base}self_attn.{n}_proj.{kind}", x.contiguous()) for n, x in zip("qkv", (q, k, v))]
    if name in _BLOCK_NAMES:
        return [(f"{base}{_BLOCK_NAMES[name]}.{kind}", t)]
    return []


def canonical_state_dict(weights, path: str, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Any supported CLIP layout -> {'vision_model.*', optional 'visual_projection.weight'}."""
    keys = list(weights.keys())
    hf_key = next((k for k in keys if k.endswith(_HF_MARKER) and "text" not in k), None)
    state: dict[str, torch.Tensor] = {}
    if _OPEN_CLIP_MARKER in keys:
        for key, tensor in dequantized(weights, dtype, keep=lambda k: k.startswith("visual.")):
            state.update(_open_clip_tensors(key, tensor))
    elif hf_key is not None:
        prefix = hf_key[: -len(_HF_MARKER)]  # e.g. "vision_model." or ""
        in_tower = lambda k: k.startswith(prefix) and k[len(prefix):].split(".")[0] in _HF_TOP_MODULES  # noqa: E731
        for key, tensor in dequantized(weights, dtype, keep=lambda k: in_tower(k) or k == _PROJECTION):
            state[key if key == _PROJECTION else _VM + key[len(prefix):]] = tensor
    else:
        raise EncoderInputError(wrong_kind(
            path, keys, "a CLIP vision model (Wan uses ViT-H/14)",
            "Use clip_vision_h.safetensors (ComfyUI) or "
            "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth (Wan release).",
        ))
    return state


def infer_config(state: dict[str, torch.Tensor], num_heads: int | None = None):
    """CLIPVisionConfig from shapes (heads from the known widths unless given)."""
    from transformers import CLIPVisionConfig

    patch = state[_VM + "embeddings.patch_embedding.weight"]  # [D, 3, p, p]
    hidden, patch_size = patch.shape[0], patch.shape[-1]
    positions = state[_VM + "embeddings.position_embedding.weight"].shape[0]
    side = math.isqrt(positions - 1)
    if side * side != positions - 1:
        raise EncoderInputError(f"CLIP position table of {positions} rows is not 1 + a square grid.")
    layers = 1 + max(int(k.split(".")[3]) for k in state if k.startswith(_VM + "encoder.layers."))
    heads = num_heads or _KNOWN_HEADS.get(hidden) or max(1, hidden // 64)
    projection = state.get(_PROJECTION)
    return CLIPVisionConfig(
        hidden_size=hidden, intermediate_size=state[_VM + "encoder.layers.0.mlp.fc1.weight"].shape[0],
        num_hidden_layers=layers, num_attention_heads=heads, image_size=side * patch_size,
        patch_size=patch_size, projection_dim=projection.shape[0] if projection is not None else hidden,
        hidden_act="gelu", layer_norm_eps=1e-5,
    )
