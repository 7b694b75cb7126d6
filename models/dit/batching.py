"""Guidance passes batched when memory allows, sequential when not.

The sampler hands the model all guidance passes of a step as one batch. The model runs them at
once ("batched"), one by one ("sequential"), or ("auto") in the largest groups whose activations
fit in the device's free memory. Each item's numbers do not depend on the grouping.
"""
from __future__ import annotations

from typing import Iterator, Optional, Sequence

import torch

from ..errors import GenerationInputError
from .memory import RESERVE_BYTES, activation_bytes, free_device_memory

POLICIES = ("auto", "batched", "sequential")


def batch_size_for(model, x: torch.Tensor) -> int:
    """Items per group under the model's batch policy, for the latent x [B, 16, T, H, W]."""
    batch, policy = x.shape[0], model.batch_policy
    if policy not in POLICIES:
        raise GenerationInputError(f"Unknown guidance batching '{policy}': choose {', '.join(POLICIES)}.")
    if policy == "batched" or batch == 1:
        return batch
    if policy == "sequential":
        return 1
    if x.device.type != "cuda":
        return batch  # host memory: the whole batch
    pt, ph, pw = model.config.patch_size
    tokens = (x.shape[2] // pt) * (x.shape[3] // ph) * (x.shape[4] // pw)
    per_item = activation_bytes(model.config, tokens, 1, model.compute_dtype)
    fits = (free_device_memory(x.device) - RESERVE_BYTES) // max(per_item, 1)
    return int(max(1, min(batch, fits)))


def _take(value, start: int, stop: int, batch: int):
    """Rows [start, stop) of a per-item input; inputs shared by the batch (first dim 1) pass whole."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return value[start:stop] if len(value) == batch else value
    if not torch.is_tensor(value) or value.dim() == 0 or value.shape[0] != batch:
        return value
    return value[start:stop]


def split_batch(size: int, x: torch.Tensor, t, context, clip_fea, y, audio, ref_masks, routing: str,
                active: Optional[Sequence[int]]) -> Iterator[tuple]:
    """forward() arguments of each group of `size` items, in order."""
    batch = x.shape[0]
    t = torch.as_tensor(t).reshape(-1)
    if torch.is_tensor(context):
        context = list(context.unbind(0)) if context.shape[0] == batch else context
    for start in range(0, batch, size):
        stop = min(start + size, batch)
        yield (x[start:stop], _take(t, start, stop, batch), _take(context, start, stop, batch),
               _take(clip_fea, start, stop, batch), _take(y, start, stop, batch), _take(audio, start, stop, batch),
               ref_masks if ref_masks is None or ref_masks.dim() != 4 else _take(ref_masks, start, stop, batch),
               routing, _take(active, start, stop, batch))
