"""The sampler's progress in ComfyUI: one bar over steps, VAE chunks and CLIP encodings, the
window counter as text on the node, and a latent preview of the current window at every step."""
from __future__ import annotations

from typing import Callable, Optional

import torch

from ..models.sampling.generate import Hooks
from . import comfy_bridge


def preview_frame(latent: torch.Tensor) -> torch.Tensor:
    """The middle latent frame of a window [1, 16, T, h, w] -> [1, 16, 1, h, w] (the first one is the
    known frame the window starts from, which says nothing about the sampling)."""
    middle = latent.shape[2] // 2
    return latent[:, :, middle:middle + 1].float()


def attach_progress(hooks: Hooks, total_units: int,
                    previewer: Optional[Callable[[torch.Tensor], object]] = None) -> comfy_bridge.Progress:
    """Point `hooks` at a progress bar of `total_units`; previews go with each step's update when
    ComfyUI's preview setting gives a previewer."""
    bar = comfy_bridge.Progress(total_units, "MultiTalk sampling")
    hooks.progress = bar.update
    previewer = previewer if previewer is not None else comfy_bridge.latent_previewer()
    if previewer is not None:
        hooks.on_step = lambda latent, window, step: bar.set_preview(previewer(preview_frame(latent)))
    return bar
