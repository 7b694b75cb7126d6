"""fp8 (e4m3fn) linear layers: weights stay fp8 in memory and are computed in bf16/fp16/fp32.

Files come either plain fp8 (scale 1) or "scaled": a `<layer>.scale_weight` tensor (ComfyUI's
scaled-fp8 files; a scalar or one value per output channel) with weight = fp8 * scale.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

FP8_DTYPES = tuple(d for d in (getattr(torch, "float8_e4m3fn", None), getattr(torch, "float8_e5m2", None)) if d)
FP8_E4M3_MAX = 448.0


def is_fp8(tensor: torch.Tensor) -> bool:
    return tensor.dtype in FP8_DTYPES


class Fp8Linear(nn.Module):
    """Drop-in for nn.Linear holding an fp8 weight and its scale (state-dict key `scale_weight`)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 weight_dtype: torch.dtype = torch.float8_e4m3fn, bias_dtype: torch.dtype = torch.bfloat16,
                 device=None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features, dtype=weight_dtype, device=device),
                                   requires_grad=False)
        self.bias = nn.Parameter(torch.empty(out_features, dtype=bias_dtype, device=device)) if bias else None
        self.register_buffer("scale_weight", torch.ones((), dtype=torch.float32, device=device))

    def dequantized_weight(self, dtype: torch.dtype) -> torch.Tensor:
        # fp32 product, one rounding to `dtype`: same numbers as a file dequantised up front
        scale = self.scale_weight.float()
        if scale.dim() == 1:  # one scale per output channel
            scale = scale[:, None]
        return (self.weight.float() * scale).to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return F.linear(x, self.dequantized_weight(x.dtype), bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, weight_dtype={self.weight.dtype}"


def quantize_fp8(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-tensor scaled e4m3fn quantisation: (fp8 weight, fp32 scalar scale)."""
    amax = weight.detach().abs().max().float().clamp_min(1e-12)
    scale = amax / FP8_E4M3_MAX
    return (weight.float() / scale).clamp(-FP8_E4M3_MAX, FP8_E4M3_MAX).to(torch.float8_e4m3fn), scale


def swap_in_fp8_linears(model: nn.Module, fp8_weight_keys: set[str], bias_dtype: torch.dtype) -> None:
    """Replace every nn.Linear whose `<name>.weight` is in fp8_weight_keys by an Fp8Linear (same device)."""
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            full = f"{name}.{child_name}" if name else child_name
            if isinstance(child, nn.Linear) and f"{full}.weight" in fp8_weight_keys:
                setattr(module, child_name, Fp8Linear(child.in_features, child.out_features, child.bias is not None,
                                                      bias_dtype=bias_dtype, device=child.weight.device))
