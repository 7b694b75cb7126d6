"""LoRA key names -> the DiT's parameter names (the released Wan layout).

Formats met in Wan 2.1 14B LoRA files (facts from ComfyUI's comfy/lora.py and weight_adapter/,
and from the Wan LoRA loaders of kijai's wrapper and diffusers):
- low-rank pairs: `<layer>.lora_up.weight` / `.lora_down.weight` (kohya, ComfyUI saves, lightx2v),
  `.lora_B.weight` / `.lora_A.weight` (diffusers / peft, sometimes `.lora_B.default.weight`),
  `.lora.up.weight` / `.lora.down.weight`, `_lora.up.weight` / `_lora.down.weight`,
  bare `.lora_B` / `.lora_A`; an optional `<layer>.alpha` scales the product by alpha / rank;
- full deltas: `<layer>.diff` (weight) and `<layer>.diff_b` (bias), as the distilled lightx2v
  and FusioniX files carry for norms, biases and modulation;
- layer names: the released ones under `diffusion_model.`, `model.diffusion_model.`,
  `transformer.`, `base_model.model.`, `pipe.dit.` or no prefix; kohya's `lora_unet_` +
  the name with dots as underscores (`lora_unet__` in Wan Fun files, `lycoris_` in SimpleTuner);
  diffusers' own Wan names (`attn1.to_q`, `ffn.net.0.proj`, `condition_embedder.*`, ...).
"""
from __future__ import annotations

import re
from typing import Iterable, Optional

# suffix -> part, longest first so `.lora_B.default.weight` wins over `.weight`-free forms
PART_SUFFIXES = (
    (".lora_up.weight", "up"), (".lora_down.weight", "down"),
    (".lora_B.default.weight", "up"), (".lora_A.default.weight", "down"),
    (".lora_B.weight", "up"), (".lora_A.weight", "down"),
    (".lora.up.weight", "up"), (".lora.down.weight", "down"),
    ("_lora.up.weight", "up"), ("_lora.down.weight", "down"),
    (".lora_B", "up"), (".lora_A", "down"),
    (".alpha", "alpha"), (".diff_b", "diff_b"), (".diff", "diff"),
    (".lora_mid.weight", "unsupported"), (".dora_scale", "unsupported"),
    (".hada_w1_a", "unsupported"), (".lokr_w1", "unsupported"), (".oft_blocks", "unsupported"),
)
NAME_PREFIXES = ("model.diffusion_model.", "diffusion_model.", "base_model.model.", "transformer.", "pipe.dit.",
                 "model.", "unet.")
UNDERSCORE_PREFIXES = ("lora_unet__", "lora_unet_", "lycoris_")

# diffusers' Wan transformer names -> released names (applied to files in diffusers naming only)
_DIFFUSERS_BLOCK = (
    ("attn1.to_out.0", "self_attn.o"), ("attn1.to_q", "self_attn.q"), ("attn1.to_k", "self_attn.k"),
    ("attn1.to_v", "self_attn.v"), ("attn1.norm_q", "self_attn.norm_q"), ("attn1.norm_k", "self_attn.norm_k"),
    ("attn2.to_out.0", "cross_attn.o"), ("attn2.to_q", "cross_attn.q"), ("attn2.to_k", "cross_attn.k"),
    ("attn2.to_v", "cross_attn.v"), ("attn2.add_k_proj", "cross_attn.k_img"),
    ("attn2.add_v_proj", "cross_attn.v_img"), ("attn2.norm_added_k", "cross_attn.norm_k_img"),
    ("attn2.norm_q", "cross_attn.norm_q"), ("attn2.norm_k", "cross_attn.norm_k"),
    ("ffn.net.0.proj", "ffn.0"), ("ffn.net.2", "ffn.2"), ("scale_shift_table", "modulation"),
    ("norm2", "norm3"),  # diffusers swapped the names: its norm2 is the released cross-attention norm3
)
_DIFFUSERS_TOP = (
    ("condition_embedder.time_embedder.linear_1", "time_embedding.0"),
    ("condition_embedder.time_embedder.linear_2", "time_embedding.2"),
    ("condition_embedder.text_embedder.linear_1", "text_embedding.0"),
    ("condition_embedder.text_embedder.linear_2", "text_embedding.2"),
    ("condition_embedder.time_proj", "time_projection.1"),
    ("condition_embedder.image_embedder.norm1", "img_emb.proj.0"),
    ("condition_embedder.image_embedder.ff.net.0.proj", "img_emb.proj.1"),
    ("condition_embedder.image_embedder.ff.net.2", "img_emb.proj.3"),
    ("condition_embedder.image_embedder.norm2", "img_emb.proj.4"),
    ("proj_out", "head.head"), ("scale_shift_table", "head.modulation"),
)
_DIFFUSERS_MARKERS = (".attn1.", ".attn2.", "condition_embedder.", "proj_out", ".ffn.net.")
_BLOCK = re.compile(r"^blocks\.(\d+)\.(.+)$")


def split_part(key: str) -> tuple[str, Optional[str]]:
    """`<layer>.<part suffix>` -> (layer as written in the file, part) or (key, None)."""
    for suffix, part in PART_SUFFIXES:
        if key.endswith(suffix):
            return key[: -len(suffix)], part
    return key, None


def uses_diffusers_names(layers: Iterable[str]) -> bool:
    return any(marker in layer for layer in layers for marker in _DIFFUSERS_MARKERS)


def _strip_prefix(layer: str) -> str:
    for prefix in NAME_PREFIXES:
        if layer.startswith(prefix):
            return layer[len(prefix):]
    return layer


def _from_diffusers(layer: str) -> str:
    match = _BLOCK.match(layer)
    if match:
        rest = match.group(2)
        for old, new in _DIFFUSERS_BLOCK:
            if rest == old or rest.startswith(old + "."):
                return f"blocks.{match.group(1)}.{new}{rest[len(old):]}"
        return layer
    for old, new in _DIFFUSERS_TOP:
        if layer == old:
            return new
    return layer


class LayerNames:
    """Resolves file layer names against the model's own layers (`<layer>.weight` / `.bias` owners)."""

    def __init__(self, model_layers: Iterable[str]):
        self.layers = set(model_layers)
        self._underscored = {layer.replace(".", "_"): layer for layer in self.layers}

    def resolve(self, written: str, diffusers: bool) -> Optional[str]:
        """The model layer a file's layer name means, or None when the model has no such layer."""
        for prefix in UNDERSCORE_PREFIXES:
            if written.startswith(prefix):
                return self._underscored.get(written[len(prefix):])
        layer = _strip_prefix(written)
        if diffusers:
            layer = _from_diffusers(layer)
        return layer if layer in self.layers else None

    def canonical(self, written: str, diffusers: bool) -> str:
        """The released-layout name of a file layer (for reports), whether or not the model has it."""
        for prefix in UNDERSCORE_PREFIXES:
            if written.startswith(prefix):
                return self._underscored.get(written[len(prefix):], written[len(prefix):])
        layer = _strip_prefix(written)
        return _from_diffusers(layer) if diffusers else layer
