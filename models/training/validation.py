"""Held-out windows and a validation loss that can be compared across steps and runs.

Whole clips are held out (windows of one clip overlap and look alike, so a window of a trained
clip would flatter the number). The loss is measured on fixed noise and fixed flow times
(the shifted timesteps of evenly spaced u), so only the adapter changes between measurements.
"""
from __future__ import annotations

from dataclasses import replace

import torch

from ..errors import DatasetInputError
from .batches import SampleTask, collate
from .cache import TrainingCache, read_window
from .flow import FlowDraw, shifted_timesteps

VALIDATION_U = (0.125, 0.375, 0.625, 0.875)  # evenly spaced uniform draws -> flow times by the shift
VALIDATION_SEED = 20240


def split_validation(cache: TrainingCache, windows: int) -> tuple[TrainingCache, TrainingCache]:
    """(training windows, held-out windows): whole clips, last in name order, until at least
    `windows` windows are held out."""
    if windows <= 0:
        return cache, replace(cache, windows=[])
    sources = sorted({w.source for w in cache.windows})
    held: set[str] = set()
    for source in reversed(sources):
        if sum(w.source in held for w in cache.windows) >= windows:
            break
        held.add(source)
    train = [w for w in cache.windows if w.source not in held]
    if not train:
        raise DatasetInputError(f"Holding out {windows} validation windows (whole clips) leaves no training window "
                                f"in '{cache.folder}' ({len(cache.windows)} windows from {len(sources)} clips): "
                                "lower validation_windows or prepare more clips.")
    return replace(cache, windows=train), replace(cache, windows=[w for w in cache.windows if w.source in held])


@torch.no_grad()
def validation_loss(loss_fn, held_out: TrainingCache, text_len: int, shift: float) -> float:
    """Mean loss over the held-out windows at the fixed flow times. `loss_fn(batch, draw)` is the
    trainer's loss (same autocast, same model)."""
    total, count = 0.0, 0
    for index, info in enumerate(held_out.windows):
        batch = collate([read_window(info)], [SampleTask(zero_audio=info.task == "i2v")], text_len)
        generator = torch.Generator().manual_seed(VALIDATION_SEED + index)
        for u in VALIDATION_U:
            sigma = shifted_timesteps(torch.tensor([u]), shift)
            draw = FlowDraw(sigma, torch.randn(batch.latents.shape, generator=generator))
            total += float(loss_fn(batch, draw))
            count += 1
    return total / max(1, count)
