"""Small building blocks of the Wan DiT: fp32 norms, the timestep embedding, the MLPs."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    """Wan's RMSNorm: statistics in fp32, the result cast back before the weight is applied."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return normed.to(x.dtype) * self.weight.to(x.dtype)


class FP32LayerNorm(nn.LayerNorm):
    """LayerNorm computed in fp32 whatever the activation dtype (as the official model does)."""

    def __init__(self, dim: int, eps: float = 1e-6, elementwise_affine: bool = False):
        super().__init__(dim, eps=eps, elementwise_affine=elementwise_affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = None if self.weight is None else self.weight.float()
        bias = None if self.bias is None else self.bias.float()
        return F.layer_norm(x.float(), self.normalized_shape, weight, bias, self.eps).to(x.dtype)


def sinusoidal_embedding(dim: int, timesteps: torch.Tensor) -> torch.Tensor:
    """[B] timesteps -> [B, dim] fp32 (cos half, then sin half).

    Computed in float64 on the CPU: the arguments reach 1000 rad, where fp32 loses the digits
    that the golden numbers keep; B x dim values cost nothing, and MPS has no float64.
    """
    half = dim // 2
    position = timesteps.detach().to("cpu", torch.float64)
    freqs = torch.pow(10000.0, -torch.arange(half, dtype=torch.float64) / half)
    angles = torch.outer(position, freqs)  # [B, half]
    emb = torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)
    return emb.to(device=timesteps.device, dtype=torch.float32)


class ImageProjection(nn.Module):
    """CLIP penultimate features [B, 257, clip_dim] -> context tokens [B, 257, dim]."""

    def __init__(self, clip_dim: int, dim: int):
        super().__init__()
        self.proj = nn.Sequential(
            nn.LayerNorm(clip_dim), nn.Linear(clip_dim, clip_dim), nn.GELU(),
            nn.Linear(clip_dim, dim), nn.LayerNorm(dim))

    def forward(self, clip_features: torch.Tensor) -> torch.Tensor:
        return self.proj(clip_features)


def gelu_tanh_mlp(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, out_dim))


class Head(nn.Module):
    """Final modulated norm + linear to patch pixels."""

    def __init__(self, dim: int, out_dim: int, patch_size: tuple[int, int, int], eps: float):
        super().__init__()
        self.norm = FP32LayerNorm(dim, eps)
        self.head = nn.Linear(dim, math.prod(patch_size) * out_dim)
        self.modulation = nn.Parameter(torch.randn(1, 2, dim) / dim**0.5)

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        # x [B, L, dim]; e [B, dim] fp32 time embedding
        shift, scale = (self.modulation.float() + e.unsqueeze(1)).chunk(2, dim=1)
        modulated = self.norm(x).float() * (1 + scale) + shift
        return self.head(modulated.to(x.dtype))
