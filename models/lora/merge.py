"""Merged LoRA: new parameter tensors W + sum(delta), computed in fp32 from the dequantised weight
and stored back in the layer's own kind:

- dense: rounded once to the parameter's dtype;
- fp8 (Fp8Linear): re-quantised to e4m3fn with a fresh scale of the same granularity as the base's
  (per tensor or per output channel);
- GGUF (GGUFLinear): float types keep their type; block types are re-encoded as Q8_0 (the finest
  block type: re-encoding a K-quant in place would add its rounding error a second time).
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

from ..weights.fp8 import Fp8Linear, dequantize_fp8, quantize_fp8
from .resolve import Term


def term_delta(terms: Sequence[Term], shape: torch.Size, device: torch.device) -> torch.Tensor:
    """sum over terms of strength * (scale * up @ down + diff), fp32 on `device`, shaped like the parameter."""
    delta = torch.zeros(shape, dtype=torch.float32, device=device)
    for term in terms:
        if term.up is not None:
            up = term.up.to(device, torch.float32).flatten(1)
            down = term.down.to(device, torch.float32).flatten(1)
            delta += (term.strength * term.scale) * (up @ down).reshape(shape)
        if term.diff is not None:
            delta += term.strength * term.diff.to(device, torch.float32).reshape(shape)
    return delta


def merge_parameter(module: nn.Module, name: str, terms: Sequence[Term], work_device: Optional[torch.device]) -> None:
    """Replace `module.<name>` (a clone's own slot) by its merged value, in the module's weight kind."""
    if name == "weight" and isinstance(module, Fp8Linear):
        _merge_fp8(module, terms, work_device)
    elif name == "weight" and hasattr(module, "qtype"):
        _merge_gguf(module, terms, work_device)
    else:
        param = getattr(module, name)
        device = work_device or param.device
        merged = param.detach().to(device, torch.float32) + term_delta(terms, param.shape, device)
        _set(module, name, merged.to(param.device, param.dtype))


def _merge_fp8(module: Fp8Linear, terms: Sequence[Term], work_device: Optional[torch.device]) -> None:
    home = module.weight.device
    device = work_device or home
    weight = dequantize_fp8(module.weight.to(device), module.scale_weight.to(device), torch.float32)
    merged = weight + term_delta(terms, weight.shape, device)
    fp8, scale = quantize_fp8(merged, per_channel=module.scale_weight.dim() == 1)
    _set(module, "weight", fp8.to(home))
    module.register_buffer("scale_weight", scale.to(home))


def _merge_gguf(module: nn.Module, terms: Sequence[Term], work_device: Optional[torch.device]) -> None:
    from ..weights.gguf_quantize import encode_like  # the gguf package only for GGUF models

    home = module.weight.device
    device = work_device or home
    weight = module.dequantized_weight(torch.float32, device)
    merged = weight + term_delta(terms, weight.shape, device)
    raw, qtype = encode_like(merged, module.qtype)
    _set(module, "weight", raw.to(home))
    module.qtype = qtype


def _set(module: nn.Module, name: str, value: torch.Tensor) -> None:
    module._parameters[name] = nn.Parameter(value, requires_grad=False)
