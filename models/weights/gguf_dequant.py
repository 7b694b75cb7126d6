"""Torch dequantisation of GGUF (GGML) tensors: vectorised, on whatever device the bytes are on.

Each block decoder maps blocks [n, type_size] uint8 -> values [n, block_size] float32 with the
arithmetic of ggml's reference decoders (fp32, same order of operations), so the numbers equal
the gguf package's numpy decoders bit for bit. Block layouts (bytes in order; f16 little-endian):

  Q8_0  32 values, 34 B: d | 32 x int8                      x = d * q
  Q4_0  32 values, 18 B: d | 16 B nibbles                   x = d * (q - 8)
  Q4_1  32 values, 20 B: d | m | 16 B nibbles               x = d * q + m
  Q5_0  32 values, 22 B: d | 4 B high bits | 16 B nibbles   x = d * (q - 16)
  Q5_1  32 values, 24 B: d | m | 4 B high bits | 16 B       x = d * q + m
  Q2_K 256 values, 84 B: 16 B 4+4-bit scale/min | 64 B 2-bit q | d | dmin
  Q3_K 256 values, 110 B: 32 B high-bit mask | 64 B 2-bit q | 12 B 6-bit scales | d
  Q4_K 256 values, 144 B: d | dmin | 12 B 6-bit scales/mins | 128 B nibbles
  Q5_K 256 values, 176 B: d | dmin | 12 B scales/mins | 32 B high bits | 128 B nibbles
  Q6_K 256 values, 210 B: 128 B low nibbles | 64 B 2-bit highs | 16 x int8 scales | d

Nibble order in 32-value blocks: byte i holds value i (low nibble) and value i + 16 (high).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Callable, Optional, Sequence, Union

import torch
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

Q = GGMLQuantizationType
Device = Union[str, torch.device, None]

# Float types are stored as plain little-endian values.
FLOAT_TYPES: dict[GGMLQuantizationType, torch.dtype] = {
    Q.F32: torch.float32, Q.F16: torch.float16, Q.BF16: torch.bfloat16}

# Values decoded per chunk: bounds the fp32 temporaries of a big layer (e.g. 5120 x 13824).
CHUNK_VALUES = 1 << 24


def _half(blocks: torch.Tensor, start: int) -> torch.Tensor:
    """[n, 1] float32 from the f16 at byte `start` of each block."""
    return blocks[:, start:start + 2].contiguous().view(torch.float16).float()


@lru_cache(maxsize=64)
def _shifts(shifts: tuple[int, ...], device: torch.device) -> torch.Tensor:
    # cached: one small host-to-device copy per device, not one per layer and step
    return torch.tensor(shifts, dtype=torch.uint8, device=device).view(1, 1, -1, 1)


def _fields(packed: torch.Tensor, shifts: Sequence[int], mask: int) -> torch.Tensor:
    """[n, g, w] bytes -> [n, g, len(shifts), w] bit fields (byte >> shift) & mask."""
    return (packed.unsqueeze(2) >> _shifts(tuple(shifts), packed.device)) & mask


def _nibbles32(packed: torch.Tensor) -> torch.Tensor:
    """16 B -> the 32 values of a legacy block: [n, 32] uint8 (low nibbles first)."""
    return _fields(packed.unsqueeze(1), (0, 4), 0x0F).reshape(packed.shape[0], 32)


def _bits32(packed: torch.Tensor) -> torch.Tensor:
    """4 B little-endian bit mask -> [n, 32] uint8, value j = bit j."""
    return _fields(packed.unsqueeze(2), range(8), 1).reshape(packed.shape[0], 32)


def _q8_0(b: torch.Tensor) -> torch.Tensor:
    return b[:, 2:].contiguous().view(torch.int8).float() * _half(b, 0)


def _q4_0(b: torch.Tensor) -> torch.Tensor:
    return _half(b, 0) * (_nibbles32(b[:, 2:18]).float() - 8)


def _q4_1(b: torch.Tensor) -> torch.Tensor:
    return _half(b, 0) * _nibbles32(b[:, 4:20]).float() + _half(b, 2)


def _q5_0(b: torch.Tensor) -> torch.Tensor:
    q = _nibbles32(b[:, 6:22]) | (_bits32(b[:, 2:6]) << 4)
    return _half(b, 0) * (q.float() - 16)


def _q5_1(b: torch.Tensor) -> torch.Tensor:
    q = _nibbles32(b[:, 8:24]) | (_bits32(b[:, 4:8]) << 4)
    return _half(b, 0) * q.float() + _half(b, 2)


def _q2_k(b: torch.Tensor) -> torch.Tensor:
    n, scales = b.shape[0], b[:, :16]
    step = (_half(b, 80) * (scales & 0x0F).float()).view(n, 16, 1)
    low = (_half(b, 82) * (scales >> 4).float()).view(n, 16, 1)
    q = _fields(b[:, 16:80].reshape(n, 2, 32), (0, 2, 4, 6), 3).reshape(n, 16, 16)
    return (step * q.float() - low).reshape(n, 256)


def _q3_k(b: torch.Tensor) -> torch.Tensor:
    n, packed = b.shape[0], b[:, 96:108]
    low = _fields(packed[:, :8].reshape(n, 1, 8), (0, 4), 0x0F).reshape(n, 16)
    high = _fields(packed[:, 8:].reshape(n, 1, 4), (0, 2, 4, 6), 3).reshape(n, 16)
    step = (_half(b, 108) * ((low | (high << 4)).float() - 32)).view(n, 16, 1)
    q = _fields(b[:, 32:96].reshape(n, 2, 32), (0, 2, 4, 6), 3).reshape(n, 16, 16)
    hmask = _fields(b[:, :32].reshape(n, 1, 32), range(8), 1).reshape(n, 16, 16)
    return (step * (q.float() - 4 * (1 - hmask.float()))).reshape(n, 256)


def _scales_mins_k(packed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """12 B of Q4_K/Q5_K -> 8 six-bit scales and 8 six-bit mins, each [n, 8] float32.
    Bytes 0-3: scale 0-3 (+ top bits of scale 4-7), 4-7: min 0-3 (+ top bits of min 4-7),
    8-11: low nibble scale 4-7, high nibble min 4-7."""
    sc, mn, extra = packed[:, 0:4], packed[:, 4:8], packed[:, 8:12]
    scales = torch.cat([sc & 0x3F, (extra & 0x0F) | ((sc >> 2) & 0x30)], dim=1)
    mins = torch.cat([mn & 0x3F, (extra >> 4) | ((mn >> 2) & 0x30)], dim=1)
    return scales.float(), mins.float()


def _q4_k(b: torch.Tensor) -> torch.Tensor:
    n = b.shape[0]
    scales, mins = _scales_mins_k(b[:, 4:16])
    step, low = (_half(b, 0) * scales).view(n, 8, 1), (_half(b, 2) * mins).view(n, 8, 1)
    q = _fields(b[:, 16:144].reshape(n, 4, 32), (0, 4), 0x0F).reshape(n, 8, 32)
    return (step * q.float() - low).reshape(n, 256)


def _q5_k(b: torch.Tensor) -> torch.Tensor:
    n = b.shape[0]
    scales, mins = _scales_mins_k(b[:, 4:16])
    step, low = (_half(b, 0) * scales).view(n, 8, 1), (_half(b, 2) * mins).view(n, 8, 1)
    q = _fields(b[:, 48:176].reshape(n, 4, 32), (0, 4), 0x0F).reshape(n, 8, 32)
    q = q | (_fields(b[:, 16:48].reshape(n, 1, 32), range(8), 1).reshape(n, 8, 32) << 4)
    return (step * q.float() - low).reshape(n, 256)


def _q6_k(b: torch.Tensor) -> torch.Tensor:
    n = b.shape[0]
    step = (_half(b, 208) * b[:, 192:208].contiguous().view(torch.int8).float()).view(n, 16, 1)
    low = _fields(b[:, :128].reshape(n, 2, 64), (0, 4), 0x0F).reshape(n, 8, 32)
    high = _fields(b[:, 128:192].reshape(n, 2, 32), (0, 2, 4, 6), 3).reshape(n, 8, 32)
    q = (low | (high << 4)).float() - 32
    return (step * q.reshape(n, 16, 16)).reshape(n, 256)


BLOCK_DECODERS: dict[GGMLQuantizationType, Callable[[torch.Tensor], torch.Tensor]] = {
    Q.Q8_0: _q8_0, Q.Q6_K: _q6_k, Q.Q5_K: _q5_k, Q.Q5_1: _q5_1, Q.Q5_0: _q5_0,
    Q.Q4_K: _q4_k, Q.Q4_1: _q4_1, Q.Q4_0: _q4_0, Q.Q3_K: _q3_k, Q.Q2_K: _q2_k}
SUPPORTED_TYPES: tuple[GGMLQuantizationType, ...] = (*FLOAT_TYPES, *BLOCK_DECODERS)


def supported_type_names() -> str:
    return ", ".join(t.name for t in SUPPORTED_TYPES)


def dequantize(raw: torch.Tensor, qtype: GGMLQuantizationType, shape: Sequence[int],
               device: Device = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Raw GGUF bytes (uint8, any shape) of a `qtype` tensor -> a `dtype` tensor of `shape` on
    `device` (default: where the bytes are). Decoding runs in fp32, rounded once to `dtype`."""
    raw = raw.to(device) if device is not None else raw
    if qtype in FLOAT_TYPES:
        return raw.contiguous().view(torch.uint8).reshape(-1).view(FLOAT_TYPES[qtype]).reshape(shape).to(dtype)
    decode = BLOCK_DECODERS[qtype]
    block_size, type_size = GGML_QUANT_SIZES[qtype]
    blocks = raw.reshape(-1, type_size)
    out = torch.empty(blocks.shape[0] * block_size, dtype=dtype, device=raw.device)
    step = max(1, CHUNK_VALUES // block_size)
    for start in range(0, blocks.shape[0], step):
        part = decode(blocks[start:start + step])
        out[start * block_size:start * block_size + part.numel()] = part.reshape(-1)
    return out.reshape(shape)


def quantised_nbytes(qtype: GGMLQuantizationType, numel: int) -> int:
    """Bytes a `qtype` tensor of `numel` values takes in a GGUF file."""
    block_size, type_size = GGML_QUANT_SIZES[qtype]
    return numel // block_size * type_size


def describe_type(qtype: Optional[GGMLQuantizationType]) -> str:
    return getattr(qtype, "name", repr(qtype))
