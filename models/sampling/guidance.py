"""Classifier-free guidance over text and audio, plain or with adaptive projected guidance.

Text scale != 1: three passes, cond (text, audio), no_text (negative text, audio) and uncond
(negative text, no audio): uncond + s_t (cond - no_text) + s_a (no_text - uncond).
Text scale == 1 (distilled LoRAs): two passes, cond and no_audio (text, no audio):
no_audio + s_a (cond - no_audio). "No audio" is one speaker's worth of zero features, which
takes the one-speaker path, as the official pipeline does.

An audio scale of exactly 1 (no APG) needs no audio-free pass: the 2-pass formula is then cond
and the 3-pass one no_text + s_t (cond - no_text), so that pass is left out (equal up to float
rounding), e.g. at the steps where a per-step audio schedule gives 1.

APG (arXiv:2410.02416, as the official option): each guidance difference goes through a
momentum buffer, is capped to a norm threshold, and only its part orthogonal to the
conditional prediction is kept: cond + (s - 1) * apg(difference).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import torch

# Which text and audio each pass sees.
PASS_INPUTS = {
    "cond": ("positive", True),
    "no_text": ("negative", True),
    "uncond": ("negative", False),
    "no_audio": ("positive", False),
}


def guidance_passes(text_scale: float) -> tuple[str, ...]:
    return ("cond", "no_audio") if math.isclose(text_scale, 1.0) else ("cond", "no_text", "uncond")


def needed_passes(passes: tuple[str, ...], audio_scale: float, apg: bool) -> tuple[str, ...]:
    """The passes a step needs: all of them, but none without audio when the audio scale is 1."""
    if apg or audio_scale != 1.0:
        return passes
    return tuple(p for p in passes if p not in ("no_audio", "uncond"))


@dataclass
class APGState:
    """Momentum buffers of one window's sampling (reset per window, as the official does)."""

    momentum: float = -0.75
    norm_threshold: float = 55.0
    running: dict = field(default_factory=dict)

    def guide(self, name: str, diff: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        self.running[name] = diff + self.momentum * self.running.get(name, 0)
        diff = self.running[name]
        if self.norm_threshold > 0:
            norm = diff.norm(p=2, dim=(-1, -2, -3, -4), keepdim=True)
            diff = diff * torch.clamp(self.norm_threshold / norm, max=1.0)
        direction = torch.nn.functional.normalize(cond.double(), dim=(-1, -2, -3, -4))
        parallel = (diff.double() * direction).sum(dim=(-1, -2, -3, -4), keepdim=True) * direction
        return (diff.double() - parallel).to(diff.dtype)  # eta = 0: the orthogonal part only


def combine(preds: dict[str, torch.Tensor], text_scale: float, audio_scale: float,
            apg: Optional[APGState] = None) -> torch.Tensor:
    """Guided velocity from the passes' predictions (keys as in guidance_passes)."""
    cond = preds["cond"]
    if apg is None and "no_audio" not in preds and "no_text" not in preds:  # audio scale 1, 2 passes
        return cond
    if apg is None and "no_text" in preds and "uncond" not in preds:  # audio scale 1, 3 passes
        return preds["no_text"] + text_scale * (cond - preds["no_text"])
    if "no_audio" in preds:
        no_audio = preds["no_audio"]
        if apg is None:
            return no_audio + audio_scale * (cond - no_audio)
        return cond + (audio_scale - 1) * apg.guide("audio", cond - no_audio, cond)
    no_text, uncond = preds["no_text"], preds["uncond"]
    if apg is None:
        return uncond + text_scale * (cond - no_text) + audio_scale * (no_text - uncond)
    return (cond + (text_scale - 1) * apg.guide("text", cond - no_text, cond)
            + (audio_scale - 1) * apg.guide("audio", no_text - uncond, cond))
