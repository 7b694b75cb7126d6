"""Counting the memory of one training step without a GPU: fake tensors (torch's FakeTensorMode,
meta storage: shapes and dtypes, no data) run the trainer's own code, and a TorchDispatchMode
keeps the bytes of every tensor alive on the emulated accelerator.

Emulation: the fake CPU device stands for the GPU; the meta device stands for host memory, where
the parked audio layers and offloaded activations go. Saved-tensor hooks count what autograd
keeps for the backward pass. Used by bench_training_memory.py.
"""
from __future__ import annotations

import contextlib
import weakref
from dataclasses import dataclass, field
from typing import Iterable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

DEVICE = "cpu"  # the emulated accelerator
HOST = torch.device("meta")  # the emulated host memory


def _key(tensor: torch.Tensor) -> int:
    return tensor.untyped_storage()._cdata


@dataclass
class Largest:
    nbytes: int = 0
    op: str = ""
    shape: tuple = ()


@dataclass
class LiveBytes(TorchDispatchMode):
    """Bytes of the distinct storages alive on DEVICE, their peak per phase, the largest op output."""

    current: int = 0
    phase: str = "setup"
    peaks: dict = field(default_factory=dict)
    largest: Largest = field(default_factory=Largest)
    _live: dict = field(default_factory=dict)

    def __post_init__(self):
        super().__init__()

    def track(self, tensors: Iterable) -> None:
        for tensor in tensors:
            if not isinstance(tensor, torch.Tensor) or tensor.device.type != DEVICE:
                continue
            storage = tensor.untyped_storage()
            key = storage._cdata
            if key in self._live:
                continue
            self._live[key] = storage.nbytes()
            self.current += storage.nbytes()
            weakref.finalize(storage, self._free, key)
            self.peaks[self.phase] = max(self.peaks.get(self.phase, 0), self.current)

    def _free(self, key: int) -> None:
        self.current -= self._live.pop(key, 0)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        flat = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        for tensor in flat:
            size = tensor.untyped_storage().nbytes() if tensor.device.type == DEVICE else 0
            if size > self.largest.nbytes:
                self.largest = Largest(size, str(func.overloadpacket.__name__), tuple(tensor.shape))
        self.track(flat)
        return out

    @contextlib.contextmanager
    def during(self, phase: str):
        self.phase = phase
        self.peaks[phase] = self.current
        yield


@dataclass
class SavedBytes:
    """What autograd keeps for backward (outside checkpointed blocks), by storage, parameters excluded."""

    exclude: set = field(default_factory=set)
    device: int = 0
    block_inputs: int = 0
    _seen: set = field(default_factory=set)

    def hooks(self, block_input_shape: tuple):
        def pack(tensor):
            key = _key(tensor)
            if key not in self._seen and key not in self.exclude and tensor.device.type == DEVICE:
                self._seen.add(key)
                nbytes = tensor.untyped_storage().nbytes()
                self.device += nbytes
                self.block_inputs += nbytes if tuple(tensor.shape) == block_input_shape else 0
            return tensor

        return torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor)


def host_offload_hooks():
    """Stand-in for save_on_cpu: saved tensors go to the emulated host and come back for backward."""
    def pack(tensor):
        return tensor.device, tensor.to(HOST)

    def unpack(packed):
        device, tensor = packed
        return tensor.to(device)

    return torch.autograd.graph.saved_tensors_hooks(pack, unpack)


def flash_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """What SDPA runs on a GPU for bf16 inputs: flash attention (saves q, k, v, out, logsumexp)."""
    dtype = q.dtype if q.dtype in (torch.float16, torch.bfloat16) else torch.bfloat16
    out = torch.ops.aten._scaled_dot_product_flash_attention(q.to(dtype), k.to(dtype), v.to(dtype))[0]
    return out.to(q.dtype)


def bitsandbytes_states(params: Iterable[torch.Tensor], block: int = 256, min_size: int = 4096) -> list:
    """The state tensors bitsandbytes' blockwise 8-bit AdamW keeps: two uint8 moments and their
    fp32 per-block absmax for tensors of at least min_size elements, fp32 moments otherwise."""
    states = []
    for param in params:
        n = param.numel()
        if n >= min_size:
            blocks = (n + block - 1) // block
            states += [torch.zeros(n, dtype=torch.uint8), torch.zeros(n, dtype=torch.uint8),
                       torch.zeros(blocks), torch.zeros(blocks)]
        else:
            states += [torch.zeros(n), torch.zeros(n)]
    return states
