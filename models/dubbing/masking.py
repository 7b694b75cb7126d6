"""Masked dubbing settings (MULTITALK_DUB_MASK) and each window's head region and blend."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from ..errors import DubbingInputError
from ..speakers.detect import detect_faces
from ..speakers.geometry import resize_crop_masks
from .faces import FaceDetector, HeadBox, track_segment
from .masks import SourceBlend, feathered, latent_mask
from .source import SourceVideo


@dataclass
class DubMaskSettings:
    """margin: face sizes added around each face box; feather: pixels of the composite's soft
    edge; detect_every: frames between face detections; masks: optional MASK [N, H, W] (one for
    the video, one per source frame, or one per 25 fps frame) instead of face tracking."""

    margin: float = 0.5
    feather: float = 16.0
    detect_every: int = 4
    masks: Optional[torch.Tensor] = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.margin) and 0 <= self.margin <= 10):
            raise DubbingInputError(f"margin is {self.margin}: use 0 to 10 face sizes (0.5 leaves room for the jaw).")
        if not (math.isfinite(self.feather) and 0 <= self.feather <= 512):
            raise DubbingInputError(f"feather is {self.feather}: use 0 to 512 pixels (16 hides the seam at 480p).")
        if self.detect_every < 1:
            raise DubbingInputError(f"detect_every is {self.detect_every}: use 1 or more frames.")
        if self.masks is not None:
            masks = self.masks.detach().float().cpu()
            masks = masks[..., 0] if masks.dim() == 4 and masks.shape[-1] == 1 else masks
            masks = masks[None] if masks.dim() == 2 else masks
            if masks.dim() != 3 or float(masks.max()) < 0.5:
                raise DubbingInputError(f"The dubbing masks have shape {tuple(self.masks.shape)} or are empty: connect "
                                        "a MASK batch [frames, H, W] that is 1 on the heads to regenerate.")
            self.masks = masks


class DubMasking:
    """Head regions of a source video, window by window, and the windows' source blends."""

    def __init__(self, settings: DubMaskSettings, source: SourceVideo, detect: FaceDetector = detect_faces):
        self.settings, self.source, self.detect = settings, source, detect
        self.notes: list[str] = []
        self._tracks: dict[int, dict[int, list[Optional[HeadBox]]]] = {}
        if settings.masks is not None:
            self._mask_index = self._mask_mapping(settings.masks.shape[0])

    def _mask_mapping(self, count: int) -> Callable[[int], int]:
        source = self.source
        if count == 1:
            return lambda frame: 0
        if count == source.num_frames:
            return lambda frame: frame
        if count > max(source.source_indices):
            return lambda frame: source.source_indices[frame]
        raise DubbingInputError(f"{count} dubbing masks for a source of {max(source.source_indices) + 1} frames "
                                f"({source.num_frames} at 25 fps): give one mask, or one per source frame.")

    def region(self, start: int, length: int, segment: tuple[int, int], speakers: torch.Tensor) -> torch.Tensor:
        """bool [H, W]: what the window starting at `start` regenerates. segment: (first, end)
        timeline frames; speakers: the segment's speaker regions [S, H, W]."""
        end = min(start + length, segment[1], self.source.num_frames)
        frames = range(min(max(start, segment[0]), end - 1), end)  # past the source's end: its last frame
        if self.settings.masks is not None:
            return self._user_region(frames)
        tracked = self._track(segment, speakers)
        every = self.settings.detect_every
        samples = [f for f in tracked if frames.start - every < f < frames.stop] or \
            [max(f for f in tracked if f <= frames.start)]
        region = torch.zeros(self.source.height, self.source.width, dtype=torch.bool)
        for frame in samples:
            for speaker, box in enumerate(tracked[frame]):
                if box is None:
                    region |= speakers[speaker] > 0
                else:
                    box.grown(self.settings.margin).paint(region)
        return region

    def _user_region(self, frames: range) -> torch.Tensor:
        masks = self.settings.masks
        indices = sorted({self._mask_index(f) for f in frames})
        union = masks[indices].amax(dim=0) >= 0.5  # [H0, W0]
        target = (self.source.height, self.source.width)
        if tuple(union.shape) != target:
            union = resize_crop_masks(union[None].float(), target)[0] > 0
        return union

    def _track(self, segment: tuple[int, int], speakers: torch.Tensor) -> dict[int, list[Optional[HeadBox]]]:
        if segment[0] not in self._tracks:
            end = min(segment[1], self.source.num_frames)
            frame_at = lambda k: self.source.frames[self.source.index(k)].numpy()  # noqa: E731
            tracked = track_segment(frame_at, segment[0], max(end, segment[0] + 1), speakers, self.detect,
                                    self.settings.detect_every)
            missing = [s + 1 for s, box in enumerate(tracked[segment[0]]) if box is None]
            if missing:
                self.notes.append(f"Masked dubbing: no face found for speaker(s) {missing} on frame {segment[0]}: "
                                  "their whole speaker region is regenerated. Give masks to the dubbing mask node.")
            self._tracks = {segment[0]: tracked}  # segments are visited in order
        return self._tracks[segment[0]]

    def blend(self, start: int, length: int, segment: tuple[int, int], speakers: torch.Tensor,
              encode: Callable[[torch.Tensor], torch.Tensor]) -> SourceBlend:
        pixel_weight = feathered(self.region(start, length, segment, speakers), self.settings.feather)
        frames = self.source.clip(start, length, end=segment[1])  # past the segment: its last frame repeats
        return SourceBlend(latent_mask(pixel_weight), pixel_weight, encode(frames), frames)
