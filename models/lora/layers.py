"""Unmerged LoRA: a linear layer (dense, fp8 or GGUF) that adds its low-rank update at compute time.

The layer keeps its class's own forward and parameter names (so state dicts, block swap and the
fp8/GGUF paths are unchanged) and gains non-persistent buffers: the LoRAs' down matrices
stacked along the rank [R, in], their up matrices times strength * alpha / rank [out, R], and
optional summed full deltas of the weight and bias:

    y = base(x) + (x @ down^T) @ up^T + x @ diff^T + diff_b
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

_CLASSES: dict[type, type] = {}


class LoraMixin:
    lora_down: Optional[torch.Tensor]
    lora_up: Optional[torch.Tensor]
    lora_diff: Optional[torch.Tensor]
    lora_diff_b: Optional[torch.Tensor]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) + self.lora_delta(x)

    def lora_delta(self, x: torch.Tensor) -> torch.Tensor:
        # x [..., in] -> [..., out]
        out = 0
        if self.lora_down is not None:
            out = F.linear(F.linear(x, self.lora_down.to(x.dtype)), self.lora_up.to(x.dtype))
        if self.lora_diff is not None:
            out = out + F.linear(x, self.lora_diff.to(x.dtype))
        if self.lora_diff_b is not None:
            out = out + self.lora_diff_b.to(x.dtype)
        return out

    def effective_weight(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """W + delta (the base class's `dequantized_weight` stays W: its own forward uses it)."""
        base = self.dequantized_weight(dtype) if hasattr(self, "dequantized_weight") else self.weight
        weight = base.float()
        if self.lora_down is not None:
            weight = weight + self.lora_up.float() @ self.lora_down.float()
        if self.lora_diff is not None:
            weight = weight + self.lora_diff.float()
        return weight.to(dtype)


def lora_class(base: type) -> type:
    """The LoRA variant of a linear layer class (made once per class)."""
    if base not in _CLASSES:
        _CLASSES[base] = type(f"Lora{base.__name__}", (LoraMixin, base), {})
    return _CLASSES[base]


def is_linear(module: nn.Module) -> bool:
    """nn.Linear and the quantised linears (Fp8Linear, GGUFLinear), with or without LoRA."""
    return isinstance(module, nn.Linear) or (hasattr(module, "in_features") and hasattr(module, "dequantized_weight"))


def add_lora(module: nn.Module, down: Optional[torch.Tensor], up: Optional[torch.Tensor],
             diff: Optional[torch.Tensor], diff_b: Optional[torch.Tensor]) -> None:
    """Turn `module` (a clone's own layer object) into its LoRA variant holding these terms."""
    module.__class__ = lora_class(type(module))
    for name, value in (("lora_down", down), ("lora_up", up), ("lora_diff", diff), ("lora_diff_b", diff_b)):
        module.register_buffer(name, value, persistent=False)
