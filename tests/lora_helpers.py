"""Shared pieces of the LoRA and speed tests: a tiny model, its inputs, and LoRAs written in the
formats real files use (names spelled out here, independently of the pack's key tables)."""
from __future__ import annotations

import torch

from comfyui_multitalk.models import load_dit
from comfyui_multitalk.models.dit.tiny import random_dit_state_dict, tiny_dit_config

# Released layer name -> the same layer in diffusers' Wan naming (for the peft-format files).
DIFFUSERS_NAMES = {
    "blocks.0.self_attn.q": "blocks.0.attn1.to_q",
    "blocks.1.self_attn.o": "blocks.1.attn1.to_out.0",
    "blocks.1.cross_attn.k_img": "blocks.1.attn2.add_k_proj",
    "blocks.0.ffn.0": "blocks.0.ffn.net.0.proj",
    "blocks.1.audio_cross_attn.kv_linear": "blocks.1.audio_cross_attn.kv_linear",
    "head.head": "proj_out",
}
LOW_RANK_LAYERS = tuple(DIFFUSERS_NAMES)


def tiny_state(layers: int = 2, seed: int = 1) -> dict[str, torch.Tensor]:
    return random_dit_state_dict(tiny_dit_config(num_layers=layers), seed=seed)


def tiny_model(state: dict, **kw):
    return load_dit(state, num_heads=2, text_len=16, **kw)


def inputs(batch: int = 1, seed: int = 0, speakers: int = 2) -> tuple[tuple, dict]:
    """Model inputs of a 3-latent-frame 4x6 window: two speakers left and right, background above."""
    g = torch.Generator().manual_seed(seed)
    t, h, w = 3, 4, 6
    masks = torch.zeros(1, speakers + 1, h, w)
    masks[:, 0, 1:, :3] = 1
    masks[:, -2, 1:, 3:] = 1
    masks[:, -1, 0] = 1
    args = (torch.randn(batch, 16, t, h, w, generator=g), torch.tensor([700.0] * batch),
            torch.randn(batch, 5, 16, generator=g), torch.randn(1, 257, 1280, generator=g),
            torch.randn(1, 20, t, h, w, generator=g))
    audio = torch.randn(1, speakers, 9, 5, 12, 768, generator=g)
    return args, dict(audio=audio, ref_masks=masks)


def random_pairs(state: dict, layers=LOW_RANK_LAYERS, rank: int = 4, seed: int = 5) -> dict:
    """layer -> (up [out, rank], down [rank, in]) for the named linear layers."""
    g = torch.Generator().manual_seed(seed)
    pairs = {}
    for layer in layers:
        out_dim, in_dim = state[f"{layer}.weight"].shape
        pairs[layer] = (0.2 * torch.randn(out_dim, rank, generator=g), 0.2 * torch.randn(rank, in_dim, generator=g))
    return pairs


def write_format(pairs: dict, fmt: str, alpha: float | None) -> dict[str, torch.Tensor]:
    """A LoRA state dict holding `pairs` in one of the formats met in Wan LoRA files."""
    names = {
        "comfyui": lambda layer, part: f"diffusion_model.{layer}.lora_{part}.weight",
        "comfyui_full_prefix": lambda layer, part: f"model.diffusion_model.{layer}.lora_{part}.weight",
        "no_prefix": lambda layer, part: f"{layer}.lora_{part}.weight",
        "kohya": lambda layer, part: f"lora_unet_{layer.replace('.', '_')}.lora_{part}.weight",
        "wan_fun": lambda layer, part: f"lora_unet__{layer.replace('.', '_')}.lora_{part}.weight",
        "peft": lambda layer, part: f"transformer.{DIFFUSERS_NAMES[layer]}.lora_{'B' if part == 'up' else 'A'}.weight",
        "peft_default": lambda layer, part: (f"base_model.model.{layer}.lora_{'B' if part == 'up' else 'A'}"
                                             ".default.weight"),
    }[fmt]
    out = {}
    for layer, (up, down) in pairs.items():
        out[names(layer, "up")] = up
        out[names(layer, "down")] = down
        if alpha is not None:
            alpha_key = names(layer, "up").replace(".lora_up.weight", ".alpha").replace(".lora_B.weight", ".alpha")
            out[alpha_key.replace(".lora_B.default.weight", ".alpha")] = torch.tensor(alpha)
    return out


def expected_state(state: dict, pairs: dict, strength: float, alpha: float | None) -> dict:
    """The LoRA's definition: W + strength * alpha / rank * up @ down (alpha absent: scale 1)."""
    out = dict(state)
    for layer, (up, down) in pairs.items():
        scale = 1.0 if alpha is None else alpha / up.shape[1]
        out[f"{layer}.weight"] = state[f"{layer}.weight"] + strength * scale * (up @ down)
    return out


def distill_style_lora(state: dict, rank: int = 4, seed: int = 7) -> dict[str, torch.Tensor]:
    """A LoRA laid out as the T2V step-distill LoRAs (lightx2v) are: lora_down/lora_up and alpha per
    attention and FFN layer of every block under `diffusion_model.`, bias deltas as `.diff_b`; no
    image cross-attention layers (a T2V model has none)."""
    g = torch.Generator().manual_seed(seed)
    blocks = sorted({int(key.split(".")[1]) for key in state if key.startswith("blocks.")})
    layers = [f"blocks.{b}.{attn}.{proj}" for b in blocks for attn in ("self_attn", "cross_attn")
              for proj in ("q", "k", "v", "o")] + [f"blocks.{b}.ffn.{i}" for b in blocks for i in (0, 2)]
    out = {}
    for layer in layers:
        out_dim, in_dim = state[f"{layer}.weight"].shape
        out[f"diffusion_model.{layer}.lora_down.weight"] = 0.1 * torch.randn(rank, in_dim, generator=g)
        out[f"diffusion_model.{layer}.lora_up.weight"] = 0.1 * torch.randn(out_dim, rank, generator=g)
        out[f"diffusion_model.{layer}.alpha"] = torch.tensor(float(rank))
        out[f"diffusion_model.{layer}.diff_b"] = 0.01 * torch.randn(out_dim, generator=g)
    return out
