"""Device placement shared by the encoders: compute on one device, rest on another."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import torch

from ..errors import EncoderInputError

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


# Called as fn(bytes, device) before an encoder moves onto a GPU: inside ComfyUI the bridge asks
# ComfyUI's model manager to free that much there (unloading other models as it sees fit).
_memory_requests: list[Callable[[int, torch.device], None]] = []
WORK_FACTOR = 1.5  # weights plus room for the activations of one call


def on_memory_request(request: Callable[[int, torch.device], None]) -> None:
    if request not in _memory_requests:
        _memory_requests.append(request)


def request_memory(nbytes: int, device: torch.device) -> None:
    if torch.device(device).type != "cpu":
        for request in _memory_requests:
            request(int(nbytes), torch.device(device))


@contextmanager
def resident(module: torch.nn.Module, device: torch.device, offload_device: torch.device,
             offload: bool = True) -> Iterator[None]:
    """Move `module` to `device` for a block; back to `offload_device` afterwards if `offload`."""
    if any(t.device != torch.device(device) for t in module.parameters()):
        size = sum(t.numel() * t.element_size() for t in module.parameters())
        request_memory(int(size * WORK_FACTOR), device)
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
