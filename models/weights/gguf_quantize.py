"""Torch encoding of GGUF blocks, for weights the pack changes in memory (LoRAs merged into a
GGUF model). Q8_0 only: it is the finest block type, encodes in one vectorised pass on any
device, and keeps a merged layer within 1/254 of each block's largest value.

ggml's reference Q8_0 (quantize_row_q8_0_ref): per 32 values, d = max|x| / 127 stored as f16,
q = roundf(x / d) (fp32 d; halves away from zero) as int8; x = d_f16 * q when decoded.
"""
from __future__ import annotations

import torch
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

from .gguf_dequant import FLOAT_TYPES

Q = GGMLQuantizationType
Q8_0_BLOCK = GGML_QUANT_SIZES[Q.Q8_0][0]  # 32 values per block
CHUNK_BLOCKS = 1 << 19  # blocks per pass: bounds the fp32 temporaries of a 14B layer


def quantize_q8_0(values: torch.Tensor) -> torch.Tensor:
    """Float values (numel a multiple of 32, any shape) -> raw Q8_0 bytes [numel / 32 * 34] uint8."""
    flat = values.detach().reshape(-1, Q8_0_BLOCK)
    out = torch.empty(flat.shape[0], 2 + Q8_0_BLOCK, dtype=torch.uint8, device=values.device)
    for start in range(0, flat.shape[0], CHUNK_BLOCKS):
        block = flat[start:start + CHUNK_BLOCKS].float()
        d = block.abs().amax(dim=1, keepdim=True) / 127.0
        inverse = torch.where(d > 0, 1.0 / d, torch.zeros_like(d))
        scaled = block * inverse
        q = (torch.sign(scaled) * torch.floor(scaled.abs() + 0.5)).clamp(-127, 127).to(torch.int8)
        out[start:start + block.shape[0], :2] = d.to(torch.float16).view(torch.uint8)
        out[start:start + block.shape[0], 2:] = q.view(torch.uint8)
    return out.reshape(-1)


def encode_like(values: torch.Tensor, qtype: GGMLQuantizationType) -> tuple[torch.Tensor, GGMLQuantizationType]:
    """(raw bytes, their type) for changed values of a `qtype` tensor: float types keep their type,
    block types become Q8_0 (the finest; a K-quant re-encoded in place would add its error again)."""
    if qtype in FLOAT_TYPES:
        return values.to(FLOAT_TYPES[qtype]).contiguous().reshape(-1).view(torch.uint8), qtype
    return quantize_q8_0(values), Q.Q8_0
