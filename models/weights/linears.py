"""Quantised weight kinds and the linear layers that hold them in memory.

A kind names how a weight is stored: "dense" (an ordinary float tensor), "fp8" (fp8 + scale,
held by Fp8Linear) and "gguf" (GGUF blocks, objects with `.qtype` and `.dequantize(device,
dtype)`, held by GGUFLinear). A model built with nn.Linear layers gets the
matching layer class swapped in for every linear whose weight is of a quantised kind.
"""
from __future__ import annotations

from typing import Callable, Mapping

import torch
from torch import nn

from ..errors import CheckpointError
from .fp8 import Fp8Linear, is_fp8


def _fp8_linear(linear: nn.Linear, bias_dtype: torch.dtype) -> nn.Module:
    return Fp8Linear(linear.in_features, linear.out_features, linear.bias is not None,
                     bias_dtype=bias_dtype, device=linear.weight.device)


def _gguf_linear(linear: nn.Linear, bias_dtype: torch.dtype) -> nn.Module:
    from .gguf_linear import GGUFLinear  # imports the gguf package only when a GGUF file is loaded

    return GGUFLinear(linear.in_features, linear.out_features, linear.bias is not None,
                      bias_dtype=bias_dtype, device=linear.weight.device)


# kind -> builder of the layer that holds such weights.
QUANTISED_LINEARS: dict[str, Callable[[nn.Linear, torch.dtype], nn.Module]] = {"fp8": _fp8_linear,
                                                                              "gguf": _gguf_linear}


def weight_kind(value) -> str:
    """'fp8', 'gguf' or 'dense' for a tensor, a meta tensor or a GGUF weight object (a GGUFLinear's
    slot holds the raw GGUF blocks as uint8, which no float weight is)."""
    if isinstance(value, torch.Tensor):
        return "fp8" if is_fp8(value) else "gguf" if value.dtype == torch.uint8 else "dense"
    if hasattr(value, "qtype") and hasattr(value, "dequantize"):
        return "gguf"
    raise TypeError(f"not a weight: {type(value).__name__}")


def swap_in_quantized_linears(model: nn.Module, kinds: Mapping[str, str], bias_dtype: torch.dtype) -> None:
    """Replace every nn.Linear whose `<name>.weight` has a quantised kind in `kinds` by the layer
    class of that kind (same device); dense weights keep their nn.Linear."""
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            full = f"{name}.{child_name}" if name else child_name
            kind = kinds.get(f"{full}.weight", "dense")
            if not isinstance(child, nn.Linear) or kind == "dense":
                continue
            if kind not in QUANTISED_LINEARS:
                raise CheckpointError(f"'{full}.weight' is stored as {kind} weights, which this model cannot hold "
                                      "yet. Use a .safetensors file (bf16, fp16 or fp8) for this model.")
            setattr(module, child_name, QUANTISED_LINEARS[kind](child, bias_dtype))
