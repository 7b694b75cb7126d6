"""`load_dit`: base Wan2.1-I2V weights + MultiTalk/InfiniteTalk audio layers -> MultiTalkDiT.

The model is built on the meta device and the file tensors are assigned into it, so a 14B
checkpoint is never held twice. fp8 weights stay fp8 (Fp8Linear); everything else takes the
compute dtype. Wrong or partial files get a CheckpointError naming the file, the missing or
unexpected keys, and what the file most likely is.
"""
from __future__ import annotations

import os
from typing import Mapping, Optional, Sequence, Union

import torch
from torch import nn

from ..errors import CheckpointError
from .checkpoint import (describe_keys, drop_markers, is_audio_key, read_checkpoint, read_config_metadata,
                         strip_prefix)
from .audio_adapter import reset_audio_parameters
from .config import DiTConfig, infer_dit_config
from .fp8 import FP8_DTYPES, is_fp8, quantize_fp8, swap_in_fp8_linears
from .model import MultiTalkDiT
from .weight_kinds import base_model_problem, guess_weight_kind

Source = Union[str, os.PathLike, Mapping[str, torch.Tensor]]
DTYPE_NAMES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16,
               "fp8_e4m3fn": torch.float8_e4m3fn, "float32": torch.float32, "float16": torch.float16,
               "bfloat16": torch.bfloat16}


def load_dit(source: Union[Source, Sequence[Source]], dtype: Union[str, torch.dtype, None] = None,
             device: Union[str, torch.device, None] = None, *, num_heads: Optional[int] = None,
             text_len: Optional[int] = None, attention: str = "auto", require_audio: bool = True) -> MultiTalkDiT:
    """Load a MultiTalk DiT.

    Args:
        source: a weights file, a sharded checkpoint (index json or its folder), a state dict, or a
            list of these (e.g. [base model, multitalk.safetensors]); later audio files override.
        dtype: compute dtype "fp32" | "bf16" | "fp16" | "fp8_e4m3fn" (fp8 weights, bf16 compute);
            None keeps the file's dtype (fp8 files stay fp8 and compute in bf16).
        device: where the model goes (default CPU).
        num_heads: head count when the width is not a multiple of 128 (tiny test models).
        text_len: text context length the model pads to (512 for the released models).
        attention: attention backend name (see models.dit.attention).
        require_audio: refuse base models without audio layers; False initialises them afresh
            (training a new adapter).
    """
    parts = _read_sources(source)
    weights = _merge_parts(parts, require_audio)
    stored = _stored_config(source)
    num_heads, text_len = num_heads or stored.get("num_heads"), text_len or stored.get("text_len")
    cfg = infer_dit_config(weights, num_heads=num_heads, text_len=text_len)
    fresh_audio = not cfg.has_audio
    if fresh_audio:
        cfg = DiTConfig(**{**cfg.__dict__, "has_audio": True})
    weight_dtype, compute_dtype = _dtypes(weights, dtype)
    if weight_dtype in FP8_DTYPES:
        weights = _quantize_block_linears(weights) if weight_dtype == torch.float8_e4m3fn else weights
    else:
        weights = _dequantize_fp8(weights, compute_dtype)
    with torch.device("meta"):
        model = MultiTalkDiT(cfg, attention=attention)
    swap_in_fp8_linears(model, {k for k, v in weights.items() if is_fp8(v)}, compute_dtype)
    weights = _fit_tensors(model, weights, compute_dtype)
    _check_keys(model, weights, parts, fresh_audio)
    model.load_state_dict(weights, strict=not fresh_audio, assign=True)
    if fresh_audio:
        _initialise_audio_layers(model, compute_dtype)
    model.fresh_audio_layers = fresh_audio
    return model.to(device or "cpu").eval().requires_grad_(False)


def _read_sources(source) -> list[tuple[str, dict[str, torch.Tensor]]]:
    items = source if isinstance(source, (list, tuple)) else [source]
    if not items:
        raise CheckpointError("No weights given: pass the Wan2.1-I2V base model and a MultiTalk audio file.")
    parts = []
    for item in items:
        if isinstance(item, Mapping):
            parts.append(("<state dict>", drop_markers(strip_prefix(item))))
        else:
            parts.append((os.fspath(item), read_checkpoint(item)))
    return parts


def _stored_config(source) -> dict[str, int]:
    stored: dict[str, int] = {}
    for item in source if isinstance(source, (list, tuple)) else [source]:
        if not isinstance(item, Mapping):
            stored.update(read_config_metadata(item))
    return stored


def _merge_parts(parts: list[tuple[str, dict]], require_audio: bool) -> dict[str, torch.Tensor]:
    """Base parts (whole files or shards) first, then audio-only files over them."""
    audio = [(name, sd) for name, sd in parts if sd and all(map(is_audio_key, sd))]
    base = [(name, sd) for name, sd in parts if not (sd and all(map(is_audio_key, sd)))]
    if not base:
        names = ", ".join(f"'{n}'" for n, _ in audio)
        raise CheckpointError(f"{names} holds only MultiTalk/InfiniteTalk audio layers; load it together with "
                              "the Wan2.1-I2V-14B base model (a file from diffusion_models).")
    merged: dict[str, torch.Tensor] = {}
    for _, sd in base + audio:
        merged.update(sd)
    base_names = " + ".join(f"'{n}'" for n, _ in base)
    if "patch_embedding.weight" not in merged:
        raise CheckpointError(f"{base_names} is not a Wan DiT: it looks like {guess_weight_kind(merged)} "
                              f"(keys: {describe_keys(merged)}).")
    problem = base_model_problem(merged, base_names.strip("'"))
    if problem:
        raise CheckpointError(problem)
    if require_audio and not any(is_audio_key(k) for k in merged):
        raise CheckpointError(f"{base_names} has no MultiTalk audio layers: also load multitalk.safetensors "
                              "or infinitetalk.safetensors (models/model_patches).")
    return merged


def _dtypes(weights: Mapping[str, torch.Tensor], requested) -> tuple[torch.dtype, torch.dtype]:
    """(weight dtype for block linears, compute dtype)."""
    if isinstance(requested, str) and requested not in ("auto", "default"):
        if requested not in DTYPE_NAMES:
            raise CheckpointError(f"Unknown dtype '{requested}'; choose fp32, bf16, fp16 or fp8_e4m3fn.")
        requested = DTYPE_NAMES[requested]
    if isinstance(requested, torch.dtype):
        return requested, (torch.bfloat16 if requested.itemsize == 1 else requested)
    big = [v.dtype for k, v in weights.items() if v.dim() >= 2 and v.is_floating_point()]
    file_dtype = max(set(big), key=big.count)
    if file_dtype.itemsize == 1:
        return file_dtype, torch.bfloat16
    non_fp8 = [d for d in big if d.itemsize > 1]
    return file_dtype, max(set(non_fp8), key=non_fp8.count) if non_fp8 else torch.bfloat16


def _quantize_block_linears(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Quantise the transformer blocks' linear weights to scaled fp8 (the bulk of a 14B model)."""
    out = dict(weights)
    for key, value in weights.items():
        if key.startswith("blocks.") and key.endswith(".weight") and value.dim() == 2 and not is_fp8(value):
            out[key], out[key[:-len("weight")] + "scale_weight"] = quantize_fp8(value)
    return out


def _dequantize(value: torch.Tensor, scale: Optional[torch.Tensor], dtype: torch.dtype) -> torch.Tensor:
    if scale is None:
        return value.to(dtype)
    scale = scale.float()
    return (value.float() * (scale[:, None] if scale.dim() == 1 else scale)).to(dtype)


def _dequantize_fp8(weights: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """fp8 tensors (with their scales) -> `dtype`, for a model asked to run without fp8."""
    out = {}
    for key, value in weights.items():
        if key.endswith(".scale_weight"):
            continue
        scale = weights.get(key[:-len("weight")] + "scale_weight") if is_fp8(value) else None
        out[key] = _dequantize(value, scale, dtype) if is_fp8(value) else value
    return out


def _fit_tensors(model: nn.Module, weights: dict[str, torch.Tensor],
                 compute_dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Cast each tensor to what its slot holds: fp8 layers keep fp8 and an fp32 scale (1 when the
    file has none); fp8 tensors of other layers are dequantised; the rest take the compute dtype."""
    slots = model.state_dict()  # meta tensors: names and dtypes only
    fitted = {}
    for key, value in weights.items():
        slot = slots.get(key)
        if key.endswith(".scale_weight"):
            if slot is not None:
                fitted[key] = value.float()
        elif slot is not None and is_fp8(slot):
            fitted[key] = value
        elif is_fp8(value):
            fitted[key] = _dequantize(value, weights.get(key[:-len("weight")] + "scale_weight"), compute_dtype)
        else:
            fitted[key] = value.to(compute_dtype) if value.is_floating_point() else value
    for key, slot in slots.items():
        if key.endswith(".scale_weight") and key not in fitted:
            fitted[key] = torch.ones((), dtype=torch.float32)
    return fitted


def _check_keys(model: nn.Module, weights: Mapping[str, torch.Tensor], parts, fresh_audio: bool) -> None:
    expected = set(model.state_dict().keys())
    missing = expected - set(weights)
    if fresh_audio:
        missing = {k for k in missing if not is_audio_key(k)}
    unexpected = set(weights) - expected
    if not missing and not unexpected:
        return
    names = " + ".join(f"'{n}'" for n, _ in parts)
    lines = [f"{names} does not match the Wan2.1-I2V + MultiTalk layout."]
    if missing:
        lines.append(f"Missing keys: {describe_keys(missing)}.")
    if unexpected:
        lines.append(f"Unexpected keys: {describe_keys(unexpected)}.")
    lines.append("A truncated download, a LoRA, or a model of another family was probably loaded.")
    raise CheckpointError(" ".join(lines))


def _initialise_audio_layers(model: MultiTalkDiT, dtype: torch.dtype) -> None:
    """Materialise the (meta) audio layers and give them fresh values, for training from scratch."""
    modules = [model.audio_proj] + [m for b in model.blocks for m in (b.audio_cross_attn, b.norm_x)]
    for module in modules:
        module.to_empty(device="cpu")
    reset_audio_parameters(modules)
    for module in modules:
        module.to(dtype)
