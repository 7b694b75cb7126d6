"""Device placement shared by the encoders: compute on one device, rest on another."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch

from ..errors import EncoderInputError

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@contextmanager
def resident(module: torch.nn.Module, device: torch.device, offload_device: torch.device,
             offload: bool = True) -> Iterator[None]:
    """Move `module` to `device` for a block; back to `offload_device` afterwards if `offload`."""
    module.to(device)
    try:
        yield
    finally:
        if offload and offload_device != device:
            module.to(offload_device)


def resolve_dtype(name: str, device: torch.device, gpu_default: str, cpu_default: str) -> torch.dtype:
    """A dtype widget value ('auto' | 'bf16' | 'fp16' | 'fp32') for a compute device."""
    if name == "auto":
        name = cpu_default if torch.device(device).type == "cpu" else gpu_default
    if name not in DTYPES:
        raise EncoderInputError(f"Unknown dtype '{name}': choose auto, {', '.join(DTYPES)}.")
    return DTYPES[name]
