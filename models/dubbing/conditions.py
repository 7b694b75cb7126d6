"""Window conditions of dubbing and timelines: what each window is anchored on and prompted with.

- source video: window k's anchor (y and CLIP) is the source frame at its first frame (the last
  frame repeats past the end); segments start at the shot cuts.
- image timeline: the image active at the window's start; segments start at image changes.
- prompt timeline: the prompt active at the window's start, or a blend (prompts.py).
Each segment's colour reference is its first anchor, and its speaker regions are placed on that
anchor (automatic ones again; masks and boxes are kept).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch

from ..errors import DubbingInputError
from ..sampling.anchors import Anchor
from ..sampling.plan import Window
from ..speakers.build import build_speaker_layout
from ..speakers.detect import detect_faces
from ..speakers.geometry import resize_crop_image
from ..speakers.layout import SpeakerLayout
from .faces import FaceDetector
from .images import ImageTimeline
from .masking import DubMasking
from .masks import SourceBlend
from .prompts import PromptTimeline
from .source import SourceVideo

logger = logging.getLogger(__name__)


def segment_layout(layout: SpeakerLayout, image: torch.Tensor, detect: FaceDetector) -> SpeakerLayout:
    """The layout for a segment anchored on `image` [1, H, W, 3] (bucketed): automatic regions are
    placed again on it; masks and boxes stay where they were given."""
    user = [layout.masks[i] if source in ("mask", "box") else None for i, source in enumerate(layout.sources)]
    if layout.num_speakers == 1 or all(m is not None for m in user) or torch.equal(image, layout.image):
        return layout
    return build_speaker_layout(image, layout.num_speakers, layout.resolution, user, (), layout.overlap_rule, detect)


@dataclass
class TimelineConditions:
    reference: torch.Tensor  # [H, W, 3] the layout's bucketed image
    clip_features: torch.Tensor  # [1, 257, 1280] of the reference
    positive_text: torch.Tensor  # [L, D], replaced by the prompt timeline when there is one
    layout: SpeakerLayout
    source: Optional[SourceVideo] = None
    prompts: Optional[PromptTimeline] = None
    images: Optional[ImageTimeline] = None
    masking: Optional[DubMasking] = None
    detect: FaceDetector = detect_faces
    notes: list[str] = field(default_factory=list)
    used: dict[int, dict] = field(default_factory=dict)  # window index -> what it was conditioned on
    _layouts: dict[int, SpeakerLayout] = field(default_factory=dict)
    _bucketed: dict[int, torch.Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.source is not None and self.images is not None:
            raise DubbingInputError("Both a source video and an image timeline are connected: a window can be "
                                    "anchored on one of them only; disconnect one.")
        if self.masking is not None and self.source is None:
            raise DubbingInputError("The dubbing mask needs a source video: connect MultiTalk Source Video.")

    def segment_starts(self) -> list[int]:
        if self.source is not None:
            return sorted({0, *self.source.shots})
        if self.images is not None:
            return sorted({0, *self.images.starts})
        return [0]

    def _segment(self, window: Window) -> tuple[int, int]:
        starts = self.segment_starts()
        end = starts[window.segment + 1] if window.segment + 1 < len(starts) else 1 << 62
        return starts[window.segment], end

    def _image(self, index: int) -> torch.Tensor:
        """Timeline image `index` at the layout's bucket, [H, W, 3]."""
        if index not in self._bucketed:
            image = self.images.images[index]
            target = (self.layout.height, self.layout.width)
            fitted = image if tuple(image.shape[1:3]) == target else resize_crop_image(image, target)
            self._bucketed[index] = fitted[0].float()
        return self._bucketed[index]

    def _anchor_at(self, frame: int, segment: tuple[int, int]) -> Anchor:
        if self.source is not None:
            index = self.source.index(frame, segment[1])
            return Anchor(("source", index), self.source.frame(index))
        if self.images is not None:
            index = self.images.active(frame)
            return Anchor(("image", index), self._image(index))
        return Anchor(("reference",), self.reference, self.clip_features)

    def anchor(self, window: Window) -> Anchor:
        anchor = self._anchor_at(window.start, self._segment(window))
        self.used.setdefault(window.index, {})["anchor"] = anchor.key
        return anchor

    def positive(self, window: Window) -> torch.Tensor:
        if self.prompts is None:
            return self.positive_text
        embedding, weights = self.prompts.for_window(window.start, *window.new_frames)
        self.used.setdefault(window.index, {})["prompts"] = weights
        return embedding

    def colour_reference(self, window: Window) -> torch.Tensor:
        segment = self._segment(window)
        return self._anchor_at(segment[0], segment).image

    def _layout(self, window: Window) -> SpeakerLayout:
        segment = self._segment(window)
        if segment[0] not in self._layouts:
            image = self._anchor_at(segment[0], segment).image[None]
            layout = segment_layout(self.layout, image, self.detect)
            if layout is not self.layout:
                placed = "; ".join(layout.describe().splitlines()[1:])
                self.notes.append(f"Segment from frame {segment[0]}: automatic speakers placed again on its first "
                                  f"frame ({placed}).")
                logger.info("MultiTalk: %s", self.notes[-1])
            self._layouts = {segment[0]: layout}  # segments come in order
        return self._layouts[segment[0]]

    def speaker_masks(self, window: Window) -> torch.Tensor:
        return self._layout(window).latent_masks()

    def blend(self, window: Window, length: int,
              encode: Callable[[torch.Tensor], torch.Tensor]) -> Optional[SourceBlend]:
        if self.masking is None:
            return None
        blend = self.masking.blend(window.start, length, self._segment(window), self._layout(window).masks, encode)
        self.notes.extend(n for n in self.masking.notes if n not in self.notes)
        return blend


def length_notes(source: SourceVideo, frames: int) -> list[str]:
    """What happens when the audio and the source video differ in length."""
    if frames > source.num_frames:
        return [f"The audio lasts {frames} frames, the source video {source.num_frames}: its last frame is the "
                f"keyframe of the last {frames - source.num_frames} frames (as the official)."]
    if frames < source.num_frames:
        return [f"The audio lasts {frames} of the source video's {source.num_frames} frames: the dub stops there."]
    return []
