"""Rotary position embeddings: Wan's 3-D RoPE over (t, h, w) and the 1-D RoPE of L-RoPE.

Both rotate adjacent pairs (x[2j], x[2j+1]) by an angle, i.e. the complex-number convention
of the official code, but in real fp32 arithmetic: no float64 complex tensors on the hot path.
Angle tables are built once per forward (float64 angles, fp32 cos/sin) and shared by all blocks.
"""
from __future__ import annotations

import torch


def rotate_pairs(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs of the last dim. x [..., D]; cos/sin broadcastable to [..., D/2]."""
    pairs = x.float().unflatten(-1, (-1, 2))  # [..., D/2, 2]
    real, imag = pairs[..., 0], pairs[..., 1]
    rotated = torch.stack((real * cos - imag * sin, real * sin + imag * cos), dim=-1)
    return rotated.flatten(-2).to(x.dtype)


def axis_pair_counts(head_dim: int) -> tuple[int, int, int]:
    """How many rotation pairs each of t, h, w gets (Wan: d - 4*(d//6), 2*(d//6), 2*(d//6) dims)."""
    pairs = head_dim // 2
    return pairs - 2 * (pairs // 3), pairs // 3, pairs // 3


def _axis_angles(positions: int, pairs: int, theta: float) -> torch.Tensor:
    # [positions, pairs] float64: position * theta^(-2j / (2 * pairs))
    inv_freq = 1.0 / torch.pow(theta, torch.arange(0, 2 * pairs, 2, dtype=torch.float64) / (2 * pairs))
    return torch.outer(torch.arange(positions, dtype=torch.float64), inv_freq)


def video_rope_table(grid: tuple[int, int, int], head_dim: int, device: torch.device,
                     theta: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin tables [L, head_dim/2] (fp32) for a (t, h, w) token grid, L = t*h*w."""
    t, h, w = grid
    pt, ph, pw = axis_pair_counts(head_dim)
    angles = torch.cat([
        _axis_angles(t, pt, theta)[:, None, None, :].expand(t, h, w, pt),
        _axis_angles(h, ph, theta)[None, :, None, :].expand(t, h, w, ph),
        _axis_angles(w, pw, theta)[None, None, :, :].expand(t, h, w, pw),
    ], dim=-1).reshape(t * h * w, -1)
    return angles.cos().float().to(device), angles.sin().float().to(device)


def label_rope_table(labels: torch.Tensor, head_dim: int, base: float = 10000.0
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin [..., head_dim/2] for real-valued 1-D positions `labels` [...] (L-RoPE).

    fp32 throughout, as the official 1-D RoPE computes it.
    """
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, device=labels.device).float() / head_dim))
    angles = labels.float().unsqueeze(-1) * inv_freq
    return angles.cos(), angles.sin()
