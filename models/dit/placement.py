"""`DiTPlacement`: one DiT's weights between a compute device and CPU memory, under a swap setting.

It answers what a model manager asks (total bytes, bytes on the device) and does what it asks
(load within a budget, free some bytes, unload everything); ComfyUI's model manager drives it
through nodes/comfy_bridge.py, and outside ComfyUI the loaders drive it with the free VRAM.
Swap setting: "auto" (the fewest swapped blocks that fit the budget), or a fixed count (0: off).
"""
from __future__ import annotations

import math
from typing import Optional, Union

import torch
from torch import nn

from ..errors import GenerationInputError
from .memory import RESERVE_BYTES, activation_bytes, free_device_memory
from .residency import block_sizes, loaded_bytes, place, swap_count, tensor_bytes

SwapSetting = Union[str, int]


def check_swap_setting(value: SwapSetting, blocks: int) -> SwapSetting:
    if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= blocks):
        return value
    raise GenerationInputError(f"Block swap '{value}' is neither 'auto' nor a block count from 0 to {blocks}.")


class DiTPlacement:
    def __init__(self, model: nn.Module, device: torch.device, offload_device: torch.device,
                 swap: SwapSetting = "auto"):
        self.model, self.device, self.offload_device = model, torch.device(device), torch.device(offload_device)
        self.swap = check_swap_setting(swap, len(model.blocks))
        self._size: Optional[int] = None

    def size(self) -> int:
        if self._size is None:
            self._size = tensor_bytes(self.model)
        return self._size

    def loaded(self) -> int:
        return loaded_bytes(self.model, self.device)

    def swapped(self) -> int:
        return swap_count(self.model)

    def count_for(self, weight_budget: Optional[float]) -> int:
        """Swapped blocks for a budget of device bytes for the weights (None or inf: everything fits)."""
        if self.swap != "auto":
            return int(self.swap)
        if weight_budget is None or math.isinf(weight_budget) or self.device.type == "cpu":
            return 0
        rest, block = block_sizes(self.model)
        count = len(self.model.blocks)
        over = rest + count * block - weight_budget
        return 0 if over <= 0 else min(count, math.ceil(over / block) + 2)

    def load(self, weight_budget: Optional[float] = None) -> int:
        """Place the model for this budget; returns the bytes newly on the device."""
        before = self.loaded()
        place(self.model, self.device, self.count_for(weight_budget), self.offload_device)
        return max(0, self.loaded() - before)

    def load_for(self, tokens: int, batch: int = 1) -> int:
        """Outside a model manager: budget = free device memory minus the activations of `batch` items."""
        if self.device.type != "cuda":
            return self.load(None)
        budget = (free_device_memory(self.device) + self.loaded() - RESERVE_BYTES
                  - activation_bytes(self.model.config, tokens, batch, self.model.compute_dtype))
        return self.load(max(0, budget))

    def free(self, wanted: int) -> int:
        """Stream more blocks from CPU memory until `wanted` bytes are free; returns the bytes freed."""
        before, (_, block) = self.loaded(), block_sizes(self.model)
        count = min(len(self.model.blocks), self.swapped() + math.ceil(wanted / max(block, 1)) + (self.swapped() == 0) * 2)
        place(self.model, self.device, count, self.offload_device)
        return max(0, before - self.loaded())

    def unload(self) -> None:
        self.model.to(self.offload_device)
        self.model.block_runner = None

    def misplaced(self) -> bool:
        """Whether a resident tensor is off the device (someone moved the model since `load`)."""
        swapped = self.swapped()
        blocks = len(self.model.blocks)
        for index, block in enumerate(self.model.blocks):
            if index >= blocks - swapped:
                break
            if not _on(block, self.device):
                return True
        return any(not _on(child, self.device) for name, child in self.model.named_children() if name != "blocks")


def _on(module: nn.Module, device: torch.device) -> bool:
    for tensor in list(module.parameters()) + list(module.buffers()):
        if tensor.device.type != device.type or (device.index is not None and tensor.device.index != device.index):
            return False
    return True
