"""`GGUFWeight`: one quantised GGUF tensor kept as its raw block bytes until it is needed."""
from __future__ import annotations

import math
from typing import Union

import torch
from gguf import GGMLQuantizationType

from .gguf_dequant import dequantize, quantised_nbytes

Device = Union[str, torch.device, None]


class GGUFWeight:
    """Raw GGML blocks (uint8, memory-mapped from the file where possible) with their type and
    logical torch shape. Nothing is dequantised until `dequantize` is called."""

    __slots__ = ("raw", "qtype", "shape")

    def __init__(self, raw: torch.Tensor, qtype: GGMLQuantizationType, shape: Union[torch.Size, tuple[int, ...]]):
        if raw.dtype != torch.uint8:
            raise TypeError(f"GGUFWeight holds raw uint8 bytes, got {raw.dtype}")
        self.raw = raw
        self.qtype = GGMLQuantizationType(qtype)
        self.shape = torch.Size(shape)
        expected = quantised_nbytes(self.qtype, math.prod(self.shape))
        if raw.numel() != expected:
            raise ValueError(f"{self.qtype.name} tensor of shape {tuple(self.shape)} takes {expected} bytes, "
                             f"got {raw.numel()}")

    def dequantize(self, device: Device = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The weight as a `dtype` tensor of `shape` on `device` (default: where the bytes are)."""
        return dequantize(self.raw, self.qtype, self.shape, device=device, dtype=dtype)

    def to(self, device: Device) -> "GGUFWeight":
        """The same weight with its raw bytes on `device` (still quantised)."""
        return GGUFWeight(self.raw.to(device), self.qtype, self.shape)

    @property
    def device(self) -> torch.device:
        return self.raw.device

    @property
    def nbytes(self) -> int:
        return self.raw.numel()

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def dim(self) -> int:
        return len(self.shape)

    def numel(self) -> int:
        return math.prod(self.shape)

    def __repr__(self) -> str:
        return f"GGUFWeight({self.qtype.name}, shape={tuple(self.shape)}, bytes={self.nbytes}, device={self.device})"
