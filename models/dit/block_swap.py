"""Block swap: run the DiT with its last N transformer blocks kept in (pinned) CPU memory.

Each swapped block is copied to the compute device just before it runs and its copies are
dropped after, so device memory holds the resident weights plus two blocks at most. The copy
of the next swapped block is issued on a side stream before the current block's kernels, so
transfers overlap compute (on CUDA; elsewhere copies are synchronous). The numbers are those of
the resident model: the same tensors, the same kernels, only their place changes.

Outside CUDA a "stand-in" device map runs the same logic with plain copies (tests on a CPU):
the at-rest tensors are never used for compute, only their copies.
"""
from __future__ import annotations

from contextlib import nullcontext
from typing import Optional, Sequence

import torch
from torch import nn

Slot = tuple[nn.Module, str, bool]  # (module, tensor name, is a parameter)


def _slots(block: nn.Module) -> list[Slot]:
    found = []
    for module in block.modules():
        found += [(module, name, True) for name, p in module._parameters.items() if p is not None]
        found += [(module, name, False) for name, b in module._buffers.items() if b is not None]
    return found


def _get(slot: Slot) -> torch.Tensor:
    module, name, is_param = slot
    return (module._parameters if is_param else module._buffers)[name]


class BlockSwap:
    """A block runner (see MultiTalkDiT.block_runner) streaming the last `count` blocks to `device`."""

    def __init__(self, blocks: nn.ModuleList, count: int, device: torch.device):
        self.device = torch.device(device)
        self.swapped = set(range(len(blocks) - count, len(blocks)))
        self.slots = {i: _slots(blocks[i]) for i in self.swapped}
        self.stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None
        self.copies_made = 0  # copies of swapped blocks so far (tests and the benchmark read it)
        self.peak_in_flight = 0  # most swapped blocks on the device at once

    def __call__(self, blocks: Sequence[nn.Module], tokens: torch.Tensor, e0: torch.Tensor, ctx) -> torch.Tensor:
        if torch.is_grad_enabled() and any(_get(slot).requires_grad for i in self.swapped for slot in self.slots[i]):
            raise RuntimeError("Block swap cannot train: gradients would reach the streamed copies. Load the "
                               "model without block swap for training.")
        fetched: dict[int, tuple[list[torch.Tensor], Optional[torch.cuda.Event]]] = {}
        for i, block in enumerate(blocks):
            if i in self.swapped and i not in fetched:
                fetched[i] = self._fetch(i)
            if i + 1 in self.swapped and i + 1 < len(blocks):
                fetched[i + 1] = self._fetch(i + 1)  # overlaps block i's compute
            self.peak_in_flight = max(self.peak_in_flight, len(fetched))
            if i in fetched:
                originals = self._install(i, *fetched.pop(i))
                tokens = block(tokens, e0, ctx)
                self._restore(i, originals)
            else:
                tokens = block(tokens, e0, ctx)
        return tokens

    def _fetch(self, index: int) -> tuple[list[torch.Tensor], Optional[torch.cuda.Event]]:
        """Issue the copies of one block's tensors to the device (side stream on CUDA)."""
        self.copies_made += 1
        with torch.cuda.stream(self.stream) if self.stream is not None else nullcontext():
            copies = [_get(slot).detach().to(self.device, non_blocking=True, copy=True) for slot in self.slots[index]]
            if self.stream is None:
                return copies, None
            event = torch.cuda.Event()
            event.record(self.stream)
        return copies, event

    def _install(self, index: int, copies: list[torch.Tensor], event: Optional[torch.cuda.Event]) -> list:
        """Point the block's slots at the device copies; returns the at-rest tensors."""
        if event is not None:
            compute = torch.cuda.current_stream(self.device)
            compute.wait_event(event)
            for copy in copies:
                copy.record_stream(compute)  # freed after the compute stream is done with it
        originals = []
        for slot, copy in zip(self.slots[index], copies):
            module, name, is_param = slot
            table = module._parameters if is_param else module._buffers
            originals.append(table[name])
            table[name] = nn.Parameter(copy, requires_grad=False) if is_param else copy
        return originals

    def _restore(self, index: int, originals: list) -> None:
        for (module, name, is_param), original in zip(self.slots[index], originals):
            (module._parameters if is_param else module._buffers)[name] = original
