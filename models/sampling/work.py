"""Counting and metering the work of a run besides the model steps: VAE encode/decode and CLIP.

Progress counts one unit per model step, per VAE chunk (one latent frame: the causal Wan VAE
encodes 1, then 4 pixel frames at a time and decodes one latent frame at a time) and per CLIP
encoding. The VAE's chunk loop is inside the VAE object (ours, ComfyUI's or diffusers'), so the
meter hooks the module that runs once per chunk (`encoder` / `decoder`) and checks for Cancel
and counts after each call. A VAE without such a module is counted as a whole when it returns.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional

import torch

from .conditioning import latent_frames
from .plan import WindowPlan

VAE_PARTS = {"encode": "encoder", "decode": "decoder"}


@dataclass(frozen=True)
class WorkUnits:
    steps: int  # model steps over all windows
    vae: int  # VAE chunks (latent frames) encoded and decoded
    clip: int  # CLIP encodings of known frames

    @property
    def total(self) -> int:
        return self.steps + self.vae + self.clip


def count_work(plan: WindowPlan, steps: int, has_clip_encoder: bool) -> WorkUnits:
    """The units a run will report, known before it starts (the progress bar's total)."""
    windows, per_window = len(plan.windows), latent_frames(plan.window)
    later = windows - 1  # windows after the first
    encode = per_window  # the reference condition (first window; every window when re-anchored)
    if plan.mode == "multitalk":
        encode += later * per_window  # each later window encodes the previous window's last frames
    elif plan.mode == "infinitetalk":
        encode += later * latent_frames(plan.motion)  # the motion frames written into the latent
    clip = later if plan.mode == "multitalk" and has_clip_encoder else 0
    return WorkUnits(steps=windows * steps, vae=encode + windows * per_window, clip=clip)


def chunk_module(vae: Any, op: str) -> Optional[torch.nn.Module]:
    """The module a VAE runs once per chunk for `op` ("encode"/"decode"), if it has one: ours and
    diffusers' keep it under .model, ComfyUI's under .first_stage_model."""
    for holder in (vae, getattr(vae, "model", None), getattr(vae, "first_stage_model", None)):
        part = getattr(holder, VAE_PARTS[op], None)
        if isinstance(part, torch.nn.Module):
            return part
    return None


class WorkMeter:
    """Reports units to `progress(n, message)` and checks `check_interrupt()` between chunks."""

    def __init__(self, progress: Callable[[int, str], None], check_interrupt: Callable[[], None]):
        self.progress, self.check_interrupt = progress, check_interrupt

    @contextmanager
    def vae(self, vae: Any, op: str, units: int, message: str) -> Iterator[None]:
        """Meter one VAE call expected to take `units` chunks: Cancel is checked before it and after
        every chunk; exactly `units` are reported (a VAE that tiles runs more chunks than that)."""
        self.check_interrupt()
        done = [0]

        def after_chunk(*_args) -> None:
            if done[0] < units:
                done[0] += 1
                self.progress(1, message)
            self.check_interrupt()

        module = chunk_module(vae, op)
        handle = module.register_forward_hook(after_chunk) if module is not None else None
        try:
            yield
        finally:
            if handle is not None:
                handle.remove()
        if units - done[0] > 0:  # a VAE without a chunk module, or one that used fewer chunks
            self.progress(units - done[0], message)

    def clip(self, encode: Callable[[torch.Tensor], torch.Tensor], frame: torch.Tensor, message: str) -> torch.Tensor:
        self.check_interrupt()
        features = encode(frame)
        self.progress(1, message)
        return features
