"""Where the DiT's weights live: on the compute device, except the blocks that block swap keeps in
(pinned) CPU memory. `place` moves modules to match a swap count; the byte counts feed
placement.py (and through it ComfyUI's model manager).
"""
from __future__ import annotations

import logging
from typing import Optional

import torch
from torch import nn

from .block_swap import BlockSwap

log = logging.getLogger(__name__)


def tensor_bytes(module: nn.Module, device: Optional[torch.device] = None) -> int:
    """Bytes of the module's parameters and buffers (on `device` only, when given)."""
    total = 0
    for tensor in list(module.parameters()) + list(module.buffers()):
        if device is None or tensor.device == torch.device(device):
            total += tensor.numel() * tensor.element_size()
    return total


def _same_device(a: torch.device, b: torch.device) -> bool:
    a, b = torch.device(a), torch.device(b)
    return a.type == b.type and (a.index is None or b.index is None or a.index == b.index)


def loaded_bytes(model: nn.Module, device: torch.device) -> int:
    """Bytes of the model's tensors that are on `device` now."""
    return sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers())
               if _same_device(t.device, device))


def block_sizes(model: nn.Module) -> tuple[int, int]:
    """(bytes outside the blocks, bytes of the largest block)."""
    blocks = max(tensor_bytes(block) for block in model.blocks)
    return tensor_bytes(model) - sum(tensor_bytes(b) for b in model.blocks), blocks


def place(model: nn.Module, device: torch.device, swapped: int, offload_device: torch.device = torch.device("cpu"),
          pin: Optional[bool] = None) -> None:
    """Put everything on `device` except the last `swapped` blocks, which go to `offload_device`
    (pinned when the device is a GPU) and stream in at each forward."""
    device = torch.device(device)
    count = len(model.blocks)
    swapped = max(0, min(int(swapped), count))
    if device.type == "cpu":
        swapped = 0  # nothing to stream to
    pin = device.type == "cuda" if pin is None else pin
    for name, child in model.named_children():
        if name != "blocks":
            child.to(device)
    for index, block in enumerate(model.blocks):
        if index < count - swapped:
            block.to(device)
        else:
            block.to(offload_device)
            if pin:
                _pin(block)
    model.block_runner = BlockSwap(model.blocks, swapped, device) if swapped else None
    log.info("DiT on %s with %d of %d blocks streamed from CPU memory", device, swapped, count)


def _pin(module: nn.Module) -> None:
    # in place (`.data`): a model sharing these tensors (a LoRA copy, its base) keeps one copy, pinned
    for tensor in list(module.parameters()) + list(module.buffers()):
        if tensor.device.type == "cpu" and not tensor.is_pinned():
            tensor.data = tensor.data.pin_memory()


def swap_count(model: nn.Module) -> int:
    runner = getattr(model, "block_runner", None)
    return len(runner.swapped) if isinstance(runner, BlockSwap) else 0
