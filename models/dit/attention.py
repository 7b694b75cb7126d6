"""Attention behind one injectable function.

Every attention in the DiT calls `fn(q, k, v)` with q [B, H, Lq, D], k/v [B, H, Lk, D] and
returns [B, H, Lq, D]. PyTorch's scaled_dot_product_attention is the default (it picks flash or
memory-efficient kernels on GPU and a blockwise kernel on CPU, so no L x L matrix is held);
"sdpa_cudnn" asks it for NVIDIA's cuDNN kernel first (exact as well, faster on Hopper).
xformers, flash-attn and SageAttention are used only when installed and chosen.
"""
from __future__ import annotations

import importlib.util
from typing import Callable

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from ..errors import GenerationInputError

AttentionFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

BACKENDS = ("auto", "sdpa", "sdpa_cudnn", "xformers", "flash_attn", "sageattention")


def sdpa_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return F.scaled_dot_product_attention(q, k, v)


def sdpa_cudnn_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """SDPA with NVIDIA's cuDNN kernel tried first (often the fastest on Hopper and later), then
    PyTorch's flash, memory-efficient and math kernels for shapes cuDNN does not take: exact."""
    with sdpa_kernel(_CUDNN_FIRST, set_priority=True):
        return F.scaled_dot_product_attention(q, k, v)


def _xformers_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    import xformers.ops

    out = xformers.ops.memory_efficient_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
    return out.transpose(1, 2)


def _flash_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    from flash_attn import flash_attn_func

    dtype = q.dtype if q.dtype in (torch.float16, torch.bfloat16) else torch.bfloat16
    out = flash_attn_func(*(t.transpose(1, 2).to(dtype) for t in (q, k, v)))
    return out.transpose(1, 2).to(q.dtype)


def _sage_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    from sageattention import sageattn

    dtype = q.dtype if q.dtype in (torch.float16, torch.bfloat16) else torch.bfloat16
    out = sageattn(q.to(dtype), k.to(dtype), v.to(dtype), tensor_layout="HND")
    return out.to(q.dtype)


_CUDNN_FIRST = [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION,
                SDPBackend.MATH]
_IMPLEMENTATIONS: dict[str, tuple[str, AttentionFn]] = {
    "sdpa": ("torch", sdpa_attention),
    "sdpa_cudnn": ("torch", sdpa_cudnn_attention),
    "xformers": ("xformers", _xformers_attention),
    "flash_attn": ("flash_attn", _flash_attention),
    "sageattention": ("sageattention", _sage_attention),
}


def backend_available(name: str) -> bool:
    module = _IMPLEMENTATIONS[name][0]
    return importlib.util.find_spec(module) is not None


def available_backends() -> list[str]:
    return [name for name in _IMPLEMENTATIONS if backend_available(name)]


def get_attention(name: str = "auto", device: torch.device | str | None = None) -> AttentionFn:
    """The attention function for a backend name; "auto" is SDPA (exact, everywhere).

    The GPU-only kernels are opt-in because SageAttention quantises and flash-attn needs
    half precision; either changes numbers slightly.
    """
    if name in ("auto", "sdpa"):
        return sdpa_attention
    if name not in _IMPLEMENTATIONS:
        raise GenerationInputError(f"Unknown attention backend '{name}'; choose one of {', '.join(BACKENDS)}.")
    if not backend_available(name):
        raise ValueError(f"Attention backend '{name}' is not installed; installed: "
                         f"{', '.join(available_backends())}. Choose 'sdpa' or install it.")
    if device is not None and torch.device(device).type != "cuda" and name != "sdpa_cudnn":
        raise ValueError(f"Attention backend '{name}' needs a CUDA GPU; use 'sdpa' on {device}.")
    return _IMPLEMENTATIONS[name][1]
