"""The speaker layout: which track drives which region of the bucketed reference image."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..errors import SpeakerInputError
from .geometry import LATENT_STRIDE, TOKEN_STRIDE, to_grid

SOURCES = ("mask", "box", "auto", "strip")


@dataclass
class SpeakerLayout:
    """Everything downstream nodes need to agree on geometry and speaker binding.

    Fields:
        image: bucketed reference image, IMAGE [1,H,W,3] float 0..1 (what the VAE encodes).
        height, width: bucketed pixel size H, W (multiples of 16).
        masks: [S,H,W] float 0/1 speaker regions on the bucketed image, track order, after
            the overlap rule (one speaker: all ones, the whole frame drives track 1).
        sources: per speaker where the region came from: "mask" | "box" | "auto" | "strip".
        notes: human-readable warnings (resized masks, clipped boxes, fallback strips...).
        resolution: "480p" or "720p" (the bucket table used).
        source_size: (height, width) of the reference image before bucketing.
        overlap_rule: the rule that resolved pixels claimed by several speakers.
    """

    image: torch.Tensor
    height: int
    width: int
    masks: torch.Tensor
    sources: list[str]
    notes: list[str] = field(default_factory=list)
    resolution: str = "480p"
    source_size: tuple[int, int] = (0, 0)
    overlap_rule: str = "nearest_center"

    def __post_init__(self) -> None:
        if tuple(self.image.shape) != (1, self.height, self.width, 3):
            raise SpeakerInputError(
                f"Layout image has shape {tuple(self.image.shape)}, "
                f"expected (1, {self.height}, {self.width}, 3)."
            )
        if self.masks.dim() != 3 or tuple(self.masks.shape[1:]) != (self.height, self.width):
            raise SpeakerInputError(
                f"Layout masks have shape {tuple(self.masks.shape)}, "
                f"expected (S, {self.height}, {self.width})."
            )
        if len(self.sources) != self.masks.shape[0]:
            raise SpeakerInputError(f"{len(self.sources)} sources for {self.masks.shape[0]} speaker masks.")

    @property
    def num_speakers(self) -> int:
        return int(self.masks.shape[0])

    @property
    def latent_size(self) -> tuple[int, int]:
        return self.height // LATENT_STRIDE, self.width // LATENT_STRIDE

    @property
    def token_size(self) -> tuple[int, int]:
        return self.height // TOKEN_STRIDE, self.width // TOKEN_STRIDE

    def background(self) -> torch.Tensor:
        """[H,W] float: 1 where no speaker region is (one speaker: all ones, as the official)."""
        if self.num_speakers == 1:
            return torch.ones(self.height, self.width)
        return (self.masks.sum(dim=0) == 0).float()

    def latent_masks(self) -> torch.Tensor:
        """The DiT's ref_target_masks: [S+1, H/8, W/8] float 0/1, speakers then background.

        One speaker: all ones (speaker and background), like the official pipeline.
        """
        if self.num_speakers == 1:
            return torch.ones(2, *self.latent_size)
        speakers = to_grid(self.masks, self.latent_size)  # [S,h,w]
        background = (speakers.sum(dim=0, keepdim=True) == 0).float()  # [1,h,w]
        return torch.cat([speakers, background], dim=0)

    def token_masks(self) -> torch.Tensor:
        """[S+1, H/16, W/16]: latent_masks() nearest-resized as the DiT does it itself."""
        return to_grid(self.latent_masks(), self.token_size)

    def describe(self) -> str:
        """A short text report: bucket, each speaker's source and box, and the notes."""
        lines = [
            f"{self.resolution} bucket {self.width}x{self.height} "
            f"(reference {self.source_size[1]}x{self.source_size[0]}), overlap rule {self.overlap_rule}"
        ]
        for index in range(self.num_speakers):
            ys, xs = torch.nonzero(self.masks[index] > 0, as_tuple=True)
            box = (f"x {int(xs.min())}..{int(xs.max())}, y {int(ys.min())}..{int(ys.max())}"
                   if ys.numel() else "empty")
            lines.append(f"speaker {index + 1}: {self.sources[index]}, {box}")
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)
