"""`load_dit`: base Wan2.1-I2V weights + MultiTalk/InfiniteTalk audio layers -> MultiTalkDiT.

The model is built on the meta device and the file tensors are read one at a time and
assigned into it, so a 14B checkpoint is never held twice. Quantised weights stay quantised
in memory in the layer of their kind (fp8: Fp8Linear); everything else takes the compute
dtype. Audio layers from 16-bit files keep the compute dtype over an fp8 base unless fp8
audio layers are asked for. Wrong or partial files get a CheckpointError naming the files,
the missing or unexpected keys, and what the files most likely are.
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence, Union

import torch

from ..errors import CheckpointError
from ..weights import FP8_DTYPES, as_dtype, is_fp8, quantize_fp8, swap_in_quantized_linears, weight_kind
from .audio_adapter import reset_audio_parameters
from .config import DiTConfig, infer_dit_config
from .keys import is_audio_key
from .model import MultiTalkDiT
from .parts import Part, Source, check_keys, merge_parts, open_parts, stored_config

DTYPE_NAMES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16,
               "fp8_e4m3fn": torch.float8_e4m3fn, "float32": torch.float32, "float16": torch.float16,
               "bfloat16": torch.bfloat16}


def load_dit(source: Union[Source, Sequence[Source]], dtype: Union[str, torch.dtype, None] = None,
             device: Union[str, torch.device, None] = None, *, num_heads: Optional[int] = None,
             text_len: Optional[int] = None, attention: str = "auto", require_audio: bool = True,
             fp8_audio_layers: bool = False) -> MultiTalkDiT:
    """Load a MultiTalk DiT.

    Args:
        source: a weights file, a sharded checkpoint (index json or its folder), a state dict, or a
            list of these (e.g. [base model, multitalk.safetensors]); later audio files override.
        dtype: compute dtype "fp32" | "bf16" | "fp16" | "fp8_e4m3fn" (fp8 weights, bf16 compute);
            None keeps the file's dtype (fp8 files stay fp8 and compute in bf16; GGUF files stay
            quantised and compute in bf16). GGUF blocks always stay quantised in memory.
        device: where the model goes (default CPU).
        num_heads: head count when the width is not a multiple of 128 (tiny test models).
        text_len: text context length the model pads to (512 for the released models).
        attention: attention backend name (see models.dit.attention).
        require_audio: refuse base models without audio layers; False initialises them afresh
            (training a new adapter).
        fp8_audio_layers: with fp8 weights, also quantise 16-bit audio layers to fp8 (by default
            they keep the compute dtype: they are small and carry the lip sync).
    """
    parts = open_parts(source)
    refs, metas = merge_parts(parts, require_audio)
    stored = stored_config(parts)
    cfg = infer_dit_config(metas, num_heads=num_heads or stored.get("num_heads"),
                           text_len=text_len or stored.get("text_len"))
    fresh_audio = not cfg.has_audio
    if fresh_audio:
        cfg = DiTConfig(**{**cfg.__dict__, "has_audio": True})
    weight_dtype, compute_dtype = _dtypes(metas, dtype)
    kinds = layer_kinds(metas, weight_dtype, fp8_audio_layers)
    with torch.device("meta"):
        model = MultiTalkDiT(cfg, attention=attention)
    swap_in_quantized_linears(model, kinds, compute_dtype)
    slots = model.state_dict()  # meta tensors: names and dtypes only
    kinds = {k: kind for k, kind in kinds.items() if k in slots and weight_kind(slots[k]) == kind}
    generated = {k for k in slots if k.endswith(".scale_weight") and kinds.get(k[:-len("scale_weight")] + "weight")}
    check_keys(set(slots) - generated, set(refs), parts, fresh_audio)
    model.load_state_dict(read_state(refs, kinds, compute_dtype, slots), strict=not fresh_audio, assign=True)
    if fresh_audio:
        _initialise_audio_layers(model, compute_dtype)
    model.fresh_audio_layers = fresh_audio
    return model.to(device or "cpu").eval().requires_grad_(False)


def _dtypes(metas: Mapping[str, object], requested) -> tuple[torch.dtype, torch.dtype]:
    """(weight dtype for block linears, compute dtype)."""
    if isinstance(requested, str) and requested not in ("auto", "default"):
        if requested not in DTYPE_NAMES:
            raise CheckpointError(f"Unknown dtype '{requested}'; choose fp32, bf16, fp16 or fp8_e4m3fn.")
        requested = DTYPE_NAMES[requested]
    if isinstance(requested, torch.dtype):
        return requested, (torch.bfloat16 if requested.itemsize == 1 else requested)
    if any(weight_kind(v) == "gguf" for v in metas.values()):
        return torch.bfloat16, torch.bfloat16  # GGUF blocks dequantise to bf16, as ComfyUI-GGUF computes
    big = [v.dtype for v in metas.values() if isinstance(v, torch.Tensor) and v.dim() >= 2 and v.is_floating_point()]
    if not big:
        return torch.bfloat16, torch.bfloat16
    file_dtype = max(set(big), key=big.count)
    if file_dtype.itemsize == 1:
        return file_dtype, torch.bfloat16
    non_fp8 = [d for d in big if d.itemsize > 1]
    return file_dtype, max(set(non_fp8), key=non_fp8.count) if non_fp8 else torch.bfloat16


def layer_kinds(metas: Mapping[str, object], weight_dtype: torch.dtype, fp8_audio_layers: bool) -> dict[str, str]:
    """`<linear>.weight` -> its quantised kind in memory ('fp8', ...); dense weights are left out.

    fp8 weights stay fp8 when the weight dtype is fp8 and are dequantised otherwise. An e4m3fn
    weight dtype also quantises the 16-bit block linears, audio layers only on request."""
    kinds = {}
    for key, meta in metas.items():
        if not key.endswith(".weight") or len(meta.shape) != 2:
            continue
        kind = weight_kind(meta)
        if kind == "fp8" and weight_dtype not in FP8_DTYPES:
            kind = "dense"
        elif (kind == "dense" and weight_dtype == torch.float8_e4m3fn and key.startswith("blocks.")
              and (fp8_audio_layers or not is_audio_key(key))):
            kind = "fp8"
        if kind != "dense":
            kinds[key] = kind
    return kinds


def read_state(refs: Mapping[str, tuple[Part, str]], kinds: Mapping[str, str], compute_dtype: torch.dtype,
               slots: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Every tensor as its slot holds it, read one at a time (the source copy is dropped at once)."""
    state = {}
    for key, (part, canonical) in refs.items():
        kind = kinds.get(key)
        if kind == "fp8":
            state[key], state[key[:-len("weight")] + "scale_weight"] = _fp8_pair(part, canonical)
        elif kind == "gguf":
            state[key] = part.weights[canonical]  # GGUF blocks, kept quantised by GGUFLinear
        else:
            state[key] = _fit_shape(as_dtype(part.weights, canonical, compute_dtype), slots.get(key))
    return state


def _fit_shape(value: torch.Tensor, slot: Optional[torch.Tensor]) -> torch.Tensor:
    """GGUF files drop leading size-1 dimensions of some tensors (a `modulation` [1, 6, dim] stored
    as [6, dim]); such a tensor is reshaped to its slot, anything else is left for the key check."""
    if slot is None or value.shape == slot.shape or value.numel() != slot.numel():
        return value
    squeeze = lambda shape: [d for d in shape if d != 1]  # noqa: E731
    return value.reshape(slot.shape) if squeeze(value.shape) == squeeze(slot.shape) else value


def _fp8_pair(part: Part, canonical: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(fp8 weight, float32 scale) of one linear: the file's, or quantised here from 16 bits."""
    value = part.weights[canonical]
    if not is_fp8(value):
        return quantize_fp8(value)
    scale_key = canonical[:-len("weight")] + "scale_weight"
    scale = part.weights[scale_key] if scale_key in part.weights else torch.ones((), dtype=torch.float32)
    return value, scale


def _initialise_audio_layers(model: MultiTalkDiT, dtype: torch.dtype) -> None:
    """Materialise the (meta) audio layers and give them fresh values, for training from scratch."""
    modules = [model.audio_proj] + [m for b in model.blocks for m in (b.audio_cross_attn, b.norm_x)]
    for module in modules:
        module.to_empty(device="cpu")
    reset_audio_parameters(modules)
    for module in modules:
        module.to(dtype)
