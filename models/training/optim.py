"""The optimizer side of a step: AdamW (fp32 states, fused on GPUs) or bitsandbytes' 8-bit
AdamW, the warm-up schedule, gradient-norm clipping, and an EMA of the adapter.

The adapter's parameters are fp32 master weights whatever the backbone computes in, so the
update is exact; 8-bit AdamW keeps the two moments in 8 bits (blockwise scaled), a quarter of
fp32 AdamW's 8 bytes per parameter.
"""
from __future__ import annotations

import importlib.util
import math
from typing import Sequence

import torch
from torch import nn

from ..errors import GenerationInputError
from .distributed import copy_full_into
from .settings import TrainSettings


def resolve_optimizer(choice: str, device: torch.device, processes: int) -> str:
    """The optimizer `auto` stands for here: 8-bit AdamW on one GPU when bitsandbytes is installed."""
    if choice != "auto":
        return choice
    one_gpu = device.type == "cuda" and processes == 1
    return "adamw8bit" if one_gpu and importlib.util.find_spec("bitsandbytes") is not None else "adamw"


def build_optimizer(params: Sequence[nn.Parameter], settings: TrainSettings, kind: str) -> torch.optim.Optimizer:
    """`kind` is "adamw" or "adamw8bit" (see resolve_optimizer)."""
    params = list(params)
    if kind == "adamw8bit":
        import bitsandbytes as bnb

        if any(type(p).__name__ == "DTensor" for p in params):
            raise GenerationInputError("optimizer 'adamw8bit' cannot update sharded (FSDP) parameters: choose "
                                       "optimizer 'adamw' with several GPUs (its states are sharded instead).")
        return bnb.optim.AdamW8bit(params, lr=settings.learning_rate, weight_decay=settings.weight_decay)
    fused = all(p.device.type == "cuda" for p in params)  # one kernel for all tensors, no fp32 temporaries
    return torch.optim.AdamW(params, lr=settings.learning_rate, weight_decay=settings.weight_decay,
                             fused=True if fused else None)


def learning_rate(settings: TrainSettings, step: int) -> float:
    """Linear warm-up from 0 over warmup_steps, then constant (step counts from 0)."""
    if not settings.warmup_steps:
        return settings.learning_rate
    return settings.learning_rate * min(1.0, (step + 1) / settings.warmup_steps)


def set_learning_rate(optimizer: torch.optim.Optimizer, value: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = value


def clip_gradients(params: Sequence[nn.Parameter], max_norm: float) -> float:
    """Clip the gradients' total norm to max_norm (0: measure only); returns the norm before clipping."""
    norm = torch.nn.utils.clip_grad_norm_(list(params), max_norm if max_norm > 0 else math.inf)
    if hasattr(norm, "full_tensor"):  # sharded parameters: the norm is a replicated DTensor
        norm = norm.full_tensor()
    return float(norm)


class AdapterEMA:
    """Exponential moving average of the adapter (torch.optim.swa_utils' EMA update), fp32."""

    def __init__(self, params: Sequence[nn.Parameter], decay: float):
        from torch.optim.swa_utils import get_ema_multi_avg_fn

        self.params = list(params)
        self.average = [p.detach().clone().float() for p in self.params]
        self._update = get_ema_multi_avg_fn(decay)
        self.updates = 0

    @torch.no_grad()
    def update(self) -> None:
        self._update(self.average, [p.detach().float() for p in self.params], self.updates)
        self.updates += 1

    def state(self) -> list[torch.Tensor]:
        return self.average

    def load(self, tensors: Sequence[torch.Tensor], updates: int) -> None:
        with torch.no_grad():
            for mine, saved in zip(self.average, tensors):
                copy_full_into(mine, saved)
        self.updates = updates
