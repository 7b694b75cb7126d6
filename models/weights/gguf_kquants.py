"""Simple K-quant encoders (Q4_K, Q5_K, Q6_K) for writing test and demo GGUF files.

The gguf package decodes K-quants but cannot encode them (llama.cpp's quantiser does that,
with an iterative error search). These encoders use plain min/max fits per sub-block: the
bytes are valid GGML blocks that every decoder reads; the error is a little larger than
llama-quantize's. Rows [n, 256 * k] float -> [n, k * type_size] uint8.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from gguf import GGMLQuantizationType

Q = GGMLQuantizationType


def _f16(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(bytes [n, 2], the float32 value those bytes hold [n])."""
    half = values.astype(np.float16)
    return half.reshape(-1, 1).view(np.uint8), half.astype(np.float32)


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros_like(num), where=den != 0)


def _pack_scales_mins(sc: np.ndarray, mn: np.ndarray) -> np.ndarray:
    """Eight 6-bit scales and mins [n, 8] -> the 12-byte Q4_K/Q5_K layout."""
    first = sc[:, :4] | ((sc[:, 4:] >> 4) << 6)
    second = mn[:, :4] | ((mn[:, 4:] >> 4) << 6)
    third = (sc[:, 4:] & 0x0F) | ((mn[:, 4:] & 0x0F) << 4)
    return np.concatenate([first, second, third], axis=1).astype(np.uint8)


def _affine_k(x: np.ndarray, levels: int) -> tuple[np.ndarray, ...]:
    """Blocks [n, 256] -> (d bytes, dmin bytes, 12 scale bytes, q [n, 8, 32]) for x = d*sc*q - dmin*m."""
    sub = x.reshape(-1, 8, 32)
    low = np.minimum(sub.min(axis=2), 0.0)
    step = (sub.max(axis=2) - low) / levels
    d_bytes, d = _f16(step.max(axis=1) / 63)
    m_bytes, dmin = _f16(-low.min(axis=1) / 63)
    sc = np.clip(np.rint(_safe_div(step, d[:, None])), 0, 63).astype(np.uint8)
    mn = np.clip(np.rint(_safe_div(-low, dmin[:, None])), 0, 63).astype(np.uint8)
    eff_step = (d[:, None] * sc)[:, :, None]
    eff_min = (dmin[:, None] * mn)[:, :, None]
    q = np.clip(np.rint(_safe_div(sub + eff_min, np.broadcast_to(eff_step, sub.shape))), 0, levels)
    return d_bytes, m_bytes, _pack_scales_mins(sc, mn), q.astype(np.uint8)


def _low_nibbles(q: np.ndarray) -> np.ndarray:
    """q [n, 8, 32] -> 128 B: byte 32k + l = q[2k, l] (low nibble) | q[2k + 1, l] (high)."""
    pairs = q.reshape(-1, 4, 2, 32) & 0x0F
    return (pairs[:, :, 0] | (pairs[:, :, 1] << 4)).reshape(-1, 128)


def _q4_k(x: np.ndarray) -> np.ndarray:
    d, dmin, scales, q = _affine_k(x, 15)
    return np.concatenate([d, dmin, scales, _low_nibbles(q)], axis=1)


def _q5_k(x: np.ndarray) -> np.ndarray:
    d, dmin, scales, q = _affine_k(x, 31)
    high = ((q >> 4) & 1).astype(np.uint8) << np.arange(8, dtype=np.uint8).reshape(1, 8, 1)
    qh = np.bitwise_or.reduce(high, axis=1)  # [n, 32]: bit j = high bit of sub-block j
    return np.concatenate([d, dmin, scales, qh, _low_nibbles(q)], axis=1)


def _q6_k(x: np.ndarray) -> np.ndarray:
    sub = x.reshape(-1, 16, 16)
    step = np.abs(sub).max(axis=2) / 31  # q - 32 in [-31, 31]: no clipping at +32
    d_bytes, d = _f16(step.max(axis=1) / 127)
    sc = np.clip(np.rint(_safe_div(step, d[:, None])), -128, 127).astype(np.int8)
    eff = np.broadcast_to((d[:, None] * sc)[:, :, None], sub.shape)
    q = (np.clip(np.rint(_safe_div(sub, eff)), -32, 31) + 32).astype(np.uint8).reshape(-1, 256)
    halves = q.reshape(-1, 2, 2, 64)
    ql = (halves[:, :, 0] & 0x0F) | ((halves[:, :, 1] & 0x0F) << 4)
    quarters = (q.reshape(-1, 2, 4, 32) >> 4) & 3
    qh = np.bitwise_or.reduce(quarters << np.array([0, 2, 4, 6], dtype=np.uint8).reshape(1, 1, 4, 1), axis=2)
    return np.concatenate([ql.reshape(-1, 128), qh.reshape(-1, 64), sc.view(np.uint8), d_bytes], axis=1)


ENCODERS: dict[GGMLQuantizationType, Callable[[np.ndarray], np.ndarray]] = {Q.Q4_K: _q4_k, Q.Q5_K: _q5_k, Q.Q6_K: _q6_k}


def quantize_k(rows: np.ndarray, qtype: GGMLQuantizationType) -> np.ndarray:
    """Float rows [..., 256 * k] -> GGML `qtype` bytes [..., k * type_size]."""
    if rows.shape[-1] % 256:
        raise ValueError(f"K-quant rows must be multiples of 256 values, got {rows.shape[-1]}")
    blocks = ENCODERS[qtype](rows.astype(np.float32).reshape(-1, 256))
    return blocks.reshape(*rows.shape[:-1], -1)
