"""What each window is conditioned on, asked window by window by the generator.

The plain case (one reference image, one prompt, one speaker layout) is StaticConditions;
dubbing and the prompt/image timelines (models/dubbing/conditions.py) answer the same
questions from a source video or timelines: segment starts, the anchor of a window (its
keyframe for y and CLIP), its prompt, the colour reference and speaker masks of its segment,
and, for masked dubbing, how its latents and frames are blended with the source.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Protocol

import torch

from .plan import Window


@dataclass(frozen=True)
class Anchor:
    """An anchor image; equal keys mean equal pixels (its VAE condition and CLIP are reused)."""

    key: tuple
    image: torch.Tensor  # [H, W, 3] 0..1 at the bucketed size
    clip: Optional[torch.Tensor] = None  # [1, 257, 1280] when already known


class WindowBlend(Protocol):
    """Masked dubbing of one window: latents and frames outside the speakers' heads come from
    the source."""

    def latent(self, latent: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor: ...

    def frames(self, frames: torch.Tensor) -> torch.Tensor: ...


class WindowConditions(Protocol):
    notes: list[str]

    def segment_starts(self) -> list[int]: ...

    def anchor(self, window: Window) -> Anchor: ...

    def positive(self, window: Window) -> torch.Tensor: ...

    def colour_reference(self, window: Window) -> torch.Tensor: ...

    def speaker_masks(self, window: Window) -> torch.Tensor: ...

    def blend(self, window: Window, length: int,
              encode: Callable[[torch.Tensor], torch.Tensor]) -> Optional[WindowBlend]: ...


@dataclass
class StaticConditions:
    """One reference image, one prompt, one speaker layout for the whole video."""

    reference: torch.Tensor  # [H, W, 3]
    clip_features: torch.Tensor  # [1, 257, 1280]
    positive_text: torch.Tensor  # [L, D]
    masks: torch.Tensor  # [S+1, h, w]
    notes: list[str] = field(default_factory=list)

    def segment_starts(self) -> list[int]:
        return [0]

    def anchor(self, window: Window) -> Anchor:
        return Anchor(("reference",), self.reference, self.clip_features)

    def positive(self, window: Window) -> torch.Tensor:
        return self.positive_text

    def colour_reference(self, window: Window) -> torch.Tensor:
        return self.reference

    def speaker_masks(self, window: Window) -> torch.Tensor:
        return self.masks

    def blend(self, window: Window, length: int, encode: Callable) -> None:
        return None
