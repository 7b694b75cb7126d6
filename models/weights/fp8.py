"""fp8 weights, the pack's one fp8 path: dequantisation, quantisation and the fp8 linear layer.

Canonical form (whatever layout the file used): an fp8 `<layer>.weight` and a float32
`<layer>.scale_weight` (a scalar, or one value per output channel) with weight = fp8 * scale;
an fp8 weight without a scale has scale 1 (plain fp8 files).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

FP8_DTYPES = tuple(d for d in (getattr(torch, "float8_e4m3fn", None), getattr(torch, "float8_e5m2", None)) if d)
FP8_E4M3_MAX = 448.0


def is_fp8(tensor) -> bool:
    return getattr(tensor, "dtype", None) in FP8_DTYPES


def dequantize_fp8(weight: torch.Tensor, scale: Optional[torch.Tensor], dtype: torch.dtype) -> torch.Tensor:
    """fp8 weight [out, ...] times its scale (scalar or [out]) in fp32, rounded once to `dtype`."""
    if scale is None:
        return weight.to(dtype)
    scale = scale.float()
    if scale.dim() == 1:  # one scale per output channel
        scale = scale.reshape(-1, *([1] * (weight.dim() - 1)))
    return (weight.float() * scale).to(dtype)


def quantize_fp8(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-tensor scaled e4m3fn quantisation: (fp8 weight, fp32 scalar scale)."""
    amax = weight.detach().abs().max().float().clamp_min(1e-12)
    scale = amax / FP8_E4M3_MAX
    return (weight.float() / scale).clamp(-FP8_E4M3_MAX, FP8_E4M3_MAX).to(torch.float8_e4m3fn), scale


def max_magnitude(weight: torch.Tensor) -> float:
    """max |w| of an fp8 tensor, read off the bytes (no float copy of a large tensor).

    fp8 codes are sign + magnitude with the magnitude bits ordered like the values, so the
    largest 7-bit code is the largest magnitude.
    """
    if weight.numel() == 0:
        return 0.0
    code = (weight.view(torch.uint8) & 0x7F).max()
    return float(code.reshape(1).view(weight.dtype).float())


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
        return dequantize_fp8(self.weight, self.scale_weight, dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return F.linear(x, self.dequantized_weight(x.dtype), bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, weight_dtype={self.weight.dtype}"
