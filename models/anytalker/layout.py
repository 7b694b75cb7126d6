"""AnyTalker's speaker layout: one face per audio track, on the reference image at its own size.

AnyTalker binds each track to a face (its crop is the identity reference, its expanded box gates
the audio), not to a person region, and works from the full image (no bucket, no crop; FACTS.md
§7, §9). A face comes from a painted MASK (its bounding box is the crop), a box (made square, as
the official squares detector boxes) or automatic detection (the n largest faces, left to
right, as the official). Where detection finds too few faces the official keeps fewer
identities (the last tracks go unused); we place the missing ones in equal strips instead and
say so.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from ..errors import SpeakerInputError
from ..speakers.build import prepare_user_mask
from ..speakers.detect import Face, detect_faces
from ..speakers.geometry import image_to_uint8
from ..speakers.regions import Box
from .faces import FaceRegions, faces_from_boxes, faces_from_detections, faces_from_masks
from .geometry import output_size

# The official --size pixel budgets (832*480, 1280*720) and the pack's draft sizes at the same ratio.
MAX_AREAS = {"480p": 832 * 480, "720p": 1280 * 720, "240p": 416 * 240, "120p": 208 * 120}
AUTO_SHIFT = {"480p": 3.0, "720p": 5.0, "240p": 3.0, "120p": 3.0}  # the official CLI: 3 at 832*480, else 5
FaceDetector = Callable[[np.ndarray], list[Face]]
FACE_LAYOUT = "anytalker"  # FaceLayout.family: what the sampler checks before an AnyTalker run


@dataclass
class FaceLayout:
    """The MULTITALK_SPEAKERS object when the audio is AnyTalker's (family "anytalker")."""

    image: torch.Tensor  # [1, H, W, 3] the reference at its own size
    faces: FaceRegions  # track order: square boxes (x, y, w, h) and 0/1 masks [N, H, W]
    sources: list[str]  # per face: "mask" | "box" | "auto" | "strip"
    resolution: str
    height: int  # video size in pixels (the official output size for the image and pixel budget)
    width: int
    notes: list[str] = field(default_factory=list)
    family: str = FACE_LAYOUT

    @property
    def num_speakers(self) -> int:
        return self.faces.count

    @property
    def masks(self) -> torch.Tensor:
        return self.faces.masks

    @property
    def source_size(self) -> tuple[int, int]:
        return int(self.image.shape[1]), int(self.image.shape[2])

    @property
    def max_area(self) -> int:
        return MAX_AREAS[self.resolution]

    def describe(self) -> str:
        lines = [f"AnyTalker {self.resolution}: video {self.width}x{self.height} from the "
                 f"{self.source_size[1]}x{self.source_size[0]} reference (whole picture, no crop)"]
        for index, ((x, y, w, h), source) in enumerate(zip(self.faces.boxes_xywh, self.sources)):
            lines.append(f"face {index + 1}: {source}, x {x:.0f}, y {y:.0f}, {w:.0f}x{h:.0f}")
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)


def _strip_face(index: int, count: int, height: int, width: int) -> tuple[float, float, float, float]:
    """A square (x, y, w, h) in the upper part of strip `index` of `count` equal vertical strips."""
    side = max(1.0, min(width / count, float(height)) * 0.5)
    centre_x, centre_y = (index + 0.5) * width / count, 0.4 * height
    return centre_x - side / 2, max(0.0, centre_y - side / 2), side, side


def _inside(regions: dict[int, FaceRegions], point: tuple[float, float]) -> bool:
    col, row = int(point[0]), int(point[1])
    return any(0 <= row < r.masks.shape[1] and 0 <= col < r.masks.shape[2] and bool(r.masks[0, row, col] > 0)
               for r in regions.values())


def _auto_faces(pixels: np.ndarray, auto: list[int], count: int, taken: dict[int, FaceRegions],
                detect: FaceDetector, notes: list[str]) -> dict[int, tuple[str, FaceRegions]]:
    height, width = pixels.shape[:2]
    free = [f for f in detect(pixels) if not _inside(taken, f.center)]
    if len(free) >= len(auto) or (count == 1 and not free):  # one face: the official centred fallback
        if len(free) > len(auto):
            notes.append(f"Found {len(free)} faces for {len(auto)} automatic speaker(s); used the largest.")
        if not free:
            notes.append("No face found: the face is a centred square (as the official). Paint a mask or type a box.")
        found = faces_from_detections([(f.x, f.y, f.x + f.w, f.y + f.h) for f in free], (height, width), len(auto))
        return {index: ("auto", _single(found, k)) for k, index in enumerate(auto)}
    notes.append(f"Found {len(free)} faces for {len(auto)} automatic speaker(s): their faces are squares in equal "
                 "vertical strips. Paint masks over the faces or type boxes if that is not where they are.")
    return {index: ("strip", faces_from_boxes([_strip_face(index, count, height, width)], (height, width), False))
            for index in auto}


def _single(regions: FaceRegions, index: int) -> FaceRegions:
    return FaceRegions([regions.boxes_xywh[index]], regions.masks[index:index + 1])


def build_face_layout(image: torch.Tensor, count: int, resolution: str = "480p",
                      masks: Sequence[Optional[torch.Tensor]] = (), boxes: Sequence[Optional[Box]] = (),
                      detect: FaceDetector = detect_faces) -> FaceLayout:
    """One face per track (mask > box > automatic), in track order, on the image [1, H, W, 3]."""
    if resolution not in MAX_AREAS:
        raise SpeakerInputError(f"Unknown resolution '{resolution}': choose one of {', '.join(MAX_AREAS)}.")
    if count < 1:
        raise SpeakerInputError(f"{count} speakers: AnyTalker needs at least one face.")
    pixels = image_to_uint8(image)
    height, width = pixels.shape[:2]
    notes: list[str] = []
    placed: dict[int, tuple[str, FaceRegions]] = {}
    for index in range(count):
        mask = masks[index] if index < len(masks) else None
        box = boxes[index] if index < len(boxes) else None
        if mask is not None:
            binary, mask_notes = prepare_user_mask(mask, height, width, index + 1)
            placed[index] = ("mask", faces_from_masks(binary[None]))
            notes.extend(mask_notes)
        elif box is not None:
            placed[index] = ("box", faces_from_boxes([tuple(box)], (height, width), square=True))
    auto = [index for index in range(count) if index not in placed]
    if auto:
        placed.update(_auto_faces(pixels, auto, count, {i: r for i, (_, r) in placed.items()}, detect, notes))
    regions = FaceRegions([placed[i][1].boxes_xywh[0] for i in range(count)],
                          torch.cat([placed[i][1].masks for i in range(count)]))
    out_h, out_w = output_size((height, width), MAX_AREAS[resolution])
    batch = image if image.dim() == 4 else image[None]
    sources = [placed[i][0] for i in range(count)]
    return FaceLayout(batch[:1, ..., :3].float(), regions, sources, resolution, out_h, out_w, notes)
