"""Following each speaker's face through a segment of the source video (for masked dubbing).

Faces are detected on the segment's first frame; each speaker takes the most prominent face
whose centre lies in their speaker region. Every `every` frames the faces are detected again
and each speaker takes the unclaimed detection nearest to their last face (within one face
width), nearest pairs first; a speaker whose face is not found keeps their last box.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

from ..speakers.detect import Face

FaceDetector = Callable[[np.ndarray], list[Face]]
MAX_JUMP = 1.0  # face widths a face may move between two detections


@dataclass(frozen=True)
class HeadBox:
    """A face box in pixels of the bucketed frame: (x0, y0) top-left, (x1, y1) bottom-right."""

    x0: float
    y0: float
    x1: float
    y1: float

    @classmethod
    def of(cls, face: Face) -> "HeadBox":
        return cls(face.x, face.y, face.x + face.w, face.y + face.h)

    @property
    def center(self) -> tuple[float, float]:
        return (self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2

    def grown(self, margin: float) -> "HeadBox":
        """The box with `margin` box sizes added on every side."""
        dx, dy = margin * (self.x1 - self.x0), margin * (self.y1 - self.y0)
        return HeadBox(self.x0 - dx, self.y0 - dy, self.x1 + dx, self.y1 + dy)

    def paint(self, region: torch.Tensor) -> None:
        """Set the box's pixels of a bool [H, W] region (clipped to it)."""
        height, width = region.shape
        x0, y0 = max(0, int(np.floor(self.x0))), max(0, int(np.floor(self.y0)))
        x1, y1 = min(width, int(np.ceil(self.x1))), min(height, int(np.ceil(self.y1)))
        region[y0:y1, x0:x1] = True


def _inside(region: torch.Tensor, point: tuple[float, float]) -> bool:
    col, row = int(point[0]), int(point[1])
    return 0 <= row < region.shape[0] and 0 <= col < region.shape[1] and bool(region[row, col] > 0)


def first_faces(faces: list[Face], regions: torch.Tensor) -> list[Optional[HeadBox]]:
    """Each speaker's face on a segment's first frame: the most prominent face (faces come most
    prominent first) centred in the speaker's region [S, H, W]; None when there is none."""
    chosen: list[Optional[HeadBox]] = []
    taken: set[int] = set()
    for region in regions:
        pick = next((i for i, f in enumerate(faces) if i not in taken and _inside(region, f.center)), None)
        if pick is not None:
            taken.add(pick)
        chosen.append(None if pick is None else HeadBox.of(faces[pick]))
    return chosen


def follow(boxes: list[Optional[HeadBox]], faces: list[Face]) -> list[Optional[HeadBox]]:
    """Next boxes: each tracked speaker takes the nearest unclaimed face within MAX_JUMP face
    widths, nearest pairs first; others keep their box."""
    pairs = []
    for s, box in enumerate(boxes):
        if box is None:
            continue
        reach = MAX_JUMP * (box.x1 - box.x0)
        for f, face in enumerate(faces):
            distance = float(np.hypot(face.center[0] - box.center[0], face.center[1] - box.center[1]))
            if distance <= reach:
                pairs.append((distance, s, f))
    result, used_s, used_f = list(boxes), set(), set()
    for _, s, f in sorted(pairs):
        if s not in used_s and f not in used_f:
            result[s] = HeadBox.of(faces[f])
            used_s.add(s)
            used_f.add(f)
    return result


def track_segment(frame_at: Callable[[int], np.ndarray], start: int, end: int, regions: torch.Tensor,
                  detect: FaceDetector, every: int) -> dict[int, list[Optional[HeadBox]]]:
    """Sampled frame -> each speaker's face box, over the segment [start, end): frames start,
    start + every, ... and end - 1. `frame_at(k)` gives frame k as uint8 RGB [H, W, 3]."""
    samples = sorted(set(range(start, end, max(1, every))) | {end - 1})
    boxes = first_faces(detect(frame_at(start)), regions)
    tracked = {start: boxes}
    for frame in samples[1:]:
        boxes = follow(boxes, detect(frame_at(frame)))
        tracked[frame] = boxes
    return tracked
