"""Reference-image timeline (MULTITALK_IMAGES): scene or outfit changes along a long video.

Each change of image starts a new segment: a fresh window at that frame, anchored on the new
image, with no motion frames carried across.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from ..errors import DubbingInputError
from .timing import start_frame


@dataclass
class ImageTimeline:
    starts: list[int]  # first timeline frame of each image (the first is 0)
    images: list[torch.Tensor]  # IMAGE [1, H, W, 3] each, as given (bucketed by the sampler)

    def active(self, frame: int) -> int:
        return max(i for i, start in enumerate(self.starts) if start <= max(frame, 0))


def build_image_timeline(images: Sequence[torch.Tensor], seconds: Sequence[float],
                         fps: float = 25.0) -> ImageTimeline:
    """Images and their start seconds (the first 0, increasing) -> ImageTimeline."""
    checked = []
    for k, image in enumerate(images, start=1):
        if not torch.is_tensor(image) or image.dim() != 4 or image.shape[-1] < 3:
            shape = tuple(image.shape) if torch.is_tensor(image) else type(image).__name__
            raise DubbingInputError(f"image_{k} has shape {shape}: connect an IMAGE (e.g. Load Image).")
        if image.shape[0] > 1:
            raise DubbingInputError(f"image_{k} holds {image.shape[0]} images: connect one image per input "
                                    "(image_1, image_2, ...), each with its own start time.")
        checked.append(image[..., :3])
    starts = [start_frame(s, fps) for s in seconds]
    for k in range(1, len(starts)):
        if starts[k] <= starts[k - 1]:
            raise DubbingInputError(f"image_{k + 1} starts at {seconds[k]} s, on the same 25 fps frame as "
                                    f"image_{k}: space the start times at least 0.04 s apart.")
    return ImageTimeline(starts, checked)
