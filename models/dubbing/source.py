"""The source video of a dub (MULTITALK_SOURCE): its frames on the 25 fps timeline, bucketed.

Frames are kept as uint8 at the bucket size (about 1.2 MB a frame at 480p, 1.8 GB a minute),
resampled by time from the source's own rate (see timing.py) and resized/centre-cropped to the
bucket of the first frame exactly like a reference image (official: every keyframe goes
through the same resize_and_centercrop to frame 0's bucket).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch

from ..errors import DubbingInputError
from ..speakers.geometry import (MIN_REFERENCE_SIDE, check_reference_size, choose_bucket, image_to_uint8,
                                 resize_crop_pixels)
from .timing import TIMELINE_FPS, timeline_indices


@dataclass
class SourceVideo:
    """frames: uint8 [F, H, W, 3] on the timeline; source_indices[k]: the source frame shown on
    timeline frame k; shots: first timeline frame of each shot (always starts with 0)."""

    frames: torch.Tensor
    source_fps: float
    source_indices: list[int]
    source_size: tuple[int, int]  # (height, width) before bucketing
    resolution: str
    soundtrack: Optional[dict] = None  # AUDIO of the file, sample 0 = the first frame
    shots: list[int] = field(default_factory=lambda: [0])
    notes: list[str] = field(default_factory=list)
    fps: float = TIMELINE_FPS

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def height(self) -> int:
        return int(self.frames.shape[1])

    @property
    def width(self) -> int:
        return int(self.frames.shape[2])

    def index(self, frame: int, end: Optional[int] = None) -> int:
        """Timeline frame -> stored frame: past `end` (a segment's end) or the last frame, the
        last one repeats (official: a keyframe index past the video gives its last frame)."""
        last = self.num_frames if end is None else min(end, self.num_frames)
        return min(max(frame, 0), last - 1)

    def frame(self, frame: int, end: Optional[int] = None) -> torch.Tensor:
        """[H, W, 3] float 0..1 of timeline frame `frame`."""
        return self.frames[self.index(frame, end)].float() / 255.0

    def clip(self, start: int, length: int, end: Optional[int] = None) -> torch.Tensor:
        """[length, H, W, 3] float 0..1: timeline frames start..start+length-1."""
        index = torch.tensor([self.index(k, end) for k in range(start, start + length)])
        return self.frames[index].float() / 255.0

    def first_frame(self) -> torch.Tensor:
        """IMAGE [1, H, W, 3]: the bucketed first frame (for MultiTalk Speakers and CLIP)."""
        return self.frame(0)[None]


def bucket_for(first: np.ndarray, resolution: str) -> tuple[tuple[int, int], list[str]]:
    """The bucket of a source's first frame (uint8 [H, W, 3]) and notes on a heavy crop."""
    height, width = first.shape[:2]
    target = choose_bucket(height, width, resolution)
    if min(height, width) < MIN_REFERENCE_SIDE:
        raise DubbingInputError(f"The source video is {width}x{height} pixels: give a video at least "
                                f"{MIN_REFERENCE_SIDE} pixels on each side (ideally about {target[1]}x{target[0]}).")
    return target, [n.replace("picture", "video") for n in check_reference_size(height, width, target)]


def source_from_images(images: torch.Tensor, fps: float, resolution: str,
                       max_frames: int = 0) -> SourceVideo:
    """IMAGE batch [N, H, W, 3] at `fps` -> SourceVideo (frames i at i / fps seconds)."""
    if images is None or images.dim() != 4 or images.shape[0] < 1 or images.shape[-1] < 3:
        shape = tuple(images.shape) if torch.is_tensor(images) else type(images).__name__
        raise DubbingInputError(f"The source images have shape {shape}: connect an IMAGE batch [frames, H, W, 3] "
                                "(e.g. the images of Get Video Components).")
    if not fps > 0:
        raise DubbingInputError(f"The source frame rate is {fps}: give the rate the frames were taken at "
                                "(e.g. 25, 30 or 24).")
    count = images.shape[0]
    indices = timeline_indices([i / fps for i in range(count)], count / fps, limit=max_frames or None)
    first = image_to_uint8(images[:1])
    target, notes = bucket_for(first, resolution)
    frames = torch.from_numpy(np.stack([resize_crop_pixels(image_to_uint8(images[i:i + 1]), target)
                                        for i in _unique_in_order(indices)]))
    frames = frames[_positions(indices)]
    return SourceVideo(frames, float(fps), indices, tuple(first.shape[:2]), resolution, notes=notes)


def _unique_in_order(indices: list[int]) -> list[int]:
    return sorted(set(indices))


def _positions(indices: list[int]) -> torch.Tensor:
    """Timeline frame -> position among the distinct source frames used."""
    order = {index: position for position, index in enumerate(_unique_in_order(indices))}
    return torch.tensor([order[i] for i in indices])
