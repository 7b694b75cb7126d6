"""fp8 weights, the pack's one fp8 path: dequantisation, quantisation and the fp8 linear layer.

Canonical form (whatever layout the file used): an fp8 `<layer>.weight` and a float32
`<layer>.scale_weight` (a scalar, or one value per output channel) with weight = fp8 * scale;
an fp8 weight without a scale has scale 1 (plain fp8 files).

Two ways to compute with fp8 weights:
- exact to the weights (default): dequantise to the activation dtype (bf16) and multiply;
- fp8 matmul (opt-in, `Fp8Linear.fp8_matmul = True`): the activations are quantised per tensor
  to e4m3fn too (scale = max|x| / 448) and `torch._scaled_mm` multiplies fp8 x fp8 with fp32
  accumulation and both scales applied. An approximation (the activation rounding), about twice
  the throughput on GPUs with fp8 tensor cores (compute capability 8.9+: Ada, Hopper, Blackwell).
  Where the kernel is missing (older GPUs, shapes not multiples of 16) the layer falls back to
  the dequantised path, so results never depend on a silent failure.
"""
from __future__ import annotations

from typing import Optional

import logging
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)

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


def quantize_fp8(weight: torch.Tensor, per_channel: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Scaled e4m3fn quantisation: (fp8 weight, fp32 scale), the scale a scalar or, with
    per_channel, one per output channel [out]; the largest |w| of each maps to 448."""
    values = weight.detach().float()
    if per_channel:
        amax = values.abs().reshape(values.shape[0], -1).amax(dim=1).clamp_min(1e-12)
        scale = amax / FP8_E4M3_MAX
        shaped = scale.reshape(-1, *([1] * (values.dim() - 1)))
        return (values / shaped).clamp(-FP8_E4M3_MAX, FP8_E4M3_MAX).to(torch.float8_e4m3fn), scale
    scale = values.abs().max().clamp_min(1e-12) / FP8_E4M3_MAX
    return (values / scale).clamp(-FP8_E4M3_MAX, FP8_E4M3_MAX).to(torch.float8_e4m3fn), scale


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

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # files hold a scalar scale or one per output channel: the buffer takes the file's shape
        scale = state_dict.get(prefix + "scale_weight")
        if scale is not None and scale.shape != self.scale_weight.shape:
            self._buffers["scale_weight"] = torch.empty(scale.shape, dtype=torch.float32,
                                                        device=self.scale_weight.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    fp8_matmul = False  # set per layer (see set_fp8_matmul): fp8 x fp8 products, an approximation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias.to(x.dtype)
        if self.fp8_matmul and scaled_mm_usable(x, self.weight):
            return scaled_linear(x, self.weight, self.scale_weight, bias)
        return F.linear(x, self.dequantized_weight(x.dtype), bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, weight_dtype={self.weight.dtype}"


def quantize_activations(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-tensor e4m3fn quantisation of activations [M, K]: (fp8 values, fp32 scalar scale)."""
    scale = x.detach().abs().amax().float().clamp_min(1e-12) / FP8_E4M3_MAX
    return (x.float() / scale).clamp(-FP8_E4M3_MAX, FP8_E4M3_MAX).to(torch.float8_e4m3fn), scale


def scaled_linear(x: torch.Tensor, weight: torch.Tensor, scale: torch.Tensor,
                  bias: Optional[torch.Tensor]) -> torch.Tensor:
    """x [..., K] times an fp8 weight [N, K] (scale: scalar or [N]) with torch._scaled_mm, out in x.dtype."""
    rows = x.reshape(-1, x.shape[-1])
    xq, x_scale = quantize_activations(rows)
    if scale.dim() == 0:
        out = torch._scaled_mm(xq, weight.t(), scale_a=x_scale, scale_b=scale.float(), bias=bias,
                               out_dtype=x.dtype)
    else:  # one scale per output channel: row-wise scaling
        out = torch._scaled_mm(xq, weight.t(), scale_a=x_scale.expand(rows.shape[0], 1).contiguous(),
                               scale_b=scale.float().reshape(1, -1).contiguous(), bias=bias, out_dtype=x.dtype)
    return out.reshape(*x.shape[:-1], weight.shape[0])


def scaled_mm_usable(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether fp8 x fp8 products run here: an e4m3fn weight, 16-bit activations, sizes that are
    multiples of 16, and a device with the kernel (CUDA capability 8.9+, or the CPU kernel)."""
    if weight.dtype != torch.float8_e4m3fn or x.dtype not in (torch.bfloat16, torch.float16):
        return False
    if x.shape[-1] % 16 or weight.shape[0] % 16:
        return False
    return fp8_matmul_supported(x.device)


def fp8_matmul_supported(device: torch.device | str) -> bool:
    device = torch.device(device)
    return _device_supports(device.type, -1 if device.index is None else device.index)


@torch._dynamo.assume_constant_result  # a fact of the machine: compiled graphs take it as a constant
def _device_supports(kind: str, index: int) -> bool:
    if kind == "cuda":
        return _cuda_capability(index if index >= 0 else torch.cuda.current_device()) >= (8, 9)
    return kind == "cpu" and _cpu_kernel()


@lru_cache(maxsize=None)
def _cuda_capability(index: int) -> tuple[int, int]:
    return torch.cuda.get_device_capability(index)


@lru_cache(maxsize=1)
def _cpu_kernel() -> bool:
    try:
        one = torch.ones((), dtype=torch.float32)
        probe = torch.zeros(16, 16, dtype=torch.float8_e4m3fn)
        torch._scaled_mm(probe, probe.t(), scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
        return True
    except (RuntimeError, NotImplementedError, AttributeError):
        log.info("This PyTorch has no CPU fp8 matmul kernel: fp8 layers dequantise to bf16 on the CPU.")
        return False


def set_fp8_matmul(model: nn.Module, enabled: bool) -> int:
    """Turn fp8 x fp8 products on or off in every Fp8Linear of `model`; returns how many layers."""
    layers = [m for m in model.modules() if isinstance(m, Fp8Linear)]
    for layer in layers:
        layer.fp8_matmul = enabled
    return len(layers)
