"""Face regions as the official pipeline builds them (FACTS.md §7).

Detector boxes -> the n largest faces, left to right, squared and clipped; a 0/1 mask per face
at the image's own resolution; no detection -> one centred square. The official detector is
InsightFace; any detector (or user boxes / masks) can feed `faces_from_detections`.
Arithmetic follows the official types: detector boxes are numpy float32, masks truncate
coordinates with int().
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch

from ..errors import SpeakerInputError


@dataclass
class FaceRegions:
    """Faces in track order (left to right): square boxes (x, y, w, h) and 0/1 masks [N, H, W]."""

    boxes_xywh: list[tuple[float, float, float, float]]
    masks: torch.Tensor  # [N, H, W] float32 0/1 at the source image's resolution

    @property
    def count(self) -> int:
        return len(self.boxes_xywh)


def square_box(box: Sequence[float], width: int, height: int) -> tuple[float, float, float, float]:
    """A detector box (x1, y1, x2, y2) -> the square about its centre, moved inside and clipped.

    Types as the official code under numpy 1.26: sums and sides of the float32 box stay float32,
    halving (by a Python int) promotes to float64."""
    x1, y1, x2, y2 = (np.float32(v) for v in box)
    cx, cy = float(x1 + x2) / 2, float(y1 + y2) / 2
    side = float(max(x2 - x1, y2 - y1))
    nx1, ny1, nx2, ny2 = cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2
    if nx1 < 0:
        nx1, nx2 = 0.0, side
    if ny1 < 0:
        ny1, ny2 = 0.0, side
    if nx2 > width:
        nx2, nx1 = float(width), width - side
    if ny2 > height:
        ny2, ny1 = float(height), height - side
    return max(0.0, nx1), max(0.0, ny1), min(float(width), nx2), min(float(height), ny2)


def box_mask(box_xyxy: Sequence[float], height: int, width: int) -> torch.Tensor:
    """[H, W] float 0/1 with ones on rows int(y1):int(y2), columns int(x1):int(x2)."""
    x1, y1, x2, y2 = box_xyxy
    mask = torch.zeros(height, width)
    mask[int(y1):int(y2), int(x1):int(x2)] = 1.0
    return mask


def _fallback_box(height: int, width: int) -> tuple[int, int, int, int]:
    side = min(width, height) // 2
    x1, y1 = width // 2 - side // 2, height // 2 - side // 2
    return max(0, x1), max(0, y1), min(width, x1 + side), min(height, y1 + side)


def faces_from_detections(boxes_xyxy: Sequence[Sequence[float]], image_hw: tuple[int, int],
                          n: Optional[int] = None) -> FaceRegions:
    """The official post-processing of detector boxes (x1, y1, x2, y2).

    n > 0 keeps the n largest boxes (by area); faces are then ordered by x1 (audio i binds the
    i-th face from the left). No box at all gives one centred square of side min(H, W) // 2."""
    height, width = image_hw
    boxes = [tuple(np.float32(v) for v in box) for box in boxes_xyxy]
    if not boxes:
        squares = [_fallback_box(height, width)]
    else:
        if n is not None and n > 0:
            boxes = sorted(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]), reverse=True)[:n]
        boxes = sorted(boxes, key=lambda b: b[0])
        squares = [square_box(box, width, height) for box in boxes]
    xywh = [(float(x1), float(y1), float(x2 - x1), float(y2 - y1)) for x1, y1, x2, y2 in squares]
    masks = torch.stack([box_mask(square, height, width) for square in squares])
    return FaceRegions(boxes_xywh=xywh, masks=masks)


def faces_from_boxes(boxes_xywh: Sequence[Sequence[float]], image_hw: tuple[int, int],
                     square: bool = True) -> FaceRegions:
    """User face boxes (x, y, w, h) in track order (pixels, or fractions when all four are <= 1)
    -> regions; `square` makes each box square as the official does with detector boxes."""
    height, width = image_hw
    squares = []
    for index, box in enumerate(boxes_xywh):
        x, y, w, h = (float(v) for v in box)
        if all(v <= 1.0 for v in (x, y, w, h)):
            x, y, w, h = x * width, y * height, w * width, h * height
        if w <= 0 or h <= 0:
            raise SpeakerInputError(f"Face box {index + 1} ({x}, {y}, {w}, {h}) has no area: give a width and height.")
        xyxy = (x, y, x + w, y + h)
        squares.append(square_box(xyxy, width, height) if square else
                       (max(0.0, x), max(0.0, y), min(float(width), x + w), min(float(height), y + h)))
    xywh = [(float(x1), float(y1), float(x2 - x1), float(y2 - y1)) for x1, y1, x2, y2 in squares]
    masks = torch.stack([box_mask(sq, height, width) for sq in squares])
    if (masks.flatten(1).sum(dim=1) == 0).any():
        raise SpeakerInputError("A face box lies outside the image: give boxes inside the picture.")
    return FaceRegions(boxes_xywh=xywh, masks=masks)


def detect_face_regions(image: np.ndarray, n: Optional[int]) -> FaceRegions:
    """Faces of an RGB uint8 image [H, W, 3] found by the pack's detector (the official uses
    InsightFace), post-processed as the official: n largest, left to right, square."""
    from ..speakers.detect import detect_faces

    boxes = [(f.x, f.y, f.x + f.w, f.y + f.h) for f in detect_faces(image)]
    return faces_from_detections(boxes, image.shape[:2], n)


def faces_from_masks(masks: torch.Tensor) -> FaceRegions:
    """User face masks [N, H, W] (track order) -> regions whose crop boxes span each mask."""
    if masks.dim() != 3:
        raise SpeakerInputError(f"Face masks must be [N, H, W]; got {tuple(masks.shape)}.")
    boxes = []
    for index, mask in enumerate(masks):
        ys, xs = torch.nonzero(mask > 0.5, as_tuple=True)
        if ys.numel() == 0:
            raise SpeakerInputError(f"Face mask {index + 1} is empty: draw the face of speaker {index + 1}.")
        x1, y1 = float(xs.min()), float(ys.min())
        boxes.append((x1, y1, float(xs.max()) + 1 - x1, float(ys.max()) + 1 - y1))
    return FaceRegions(boxes_xywh=boxes, masks=(masks > 0.5).float())


def crop_face(image: torch.Tensor, box_xywh: Sequence[float]) -> torch.Tensor:
    """Crop [C, H, W] to a face box (x, y, w, h) as the official `expand_bbox_and_crop_image(img,
    box, 1, 1)`: centre +- half size, clipped to the image, truncated with int(). A box with no
    whole pixel inside the image is an error (the official skips that face)."""
    _, height, width = image.shape
    x, y, w, h = (float(v) for v in box_xywh)
    x1, y1, x2, y2 = x, y, x + w, y + h
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    half_w, half_h = (x2 - x1) / 2.0, (y2 - y1) / 2.0
    nx1, ny1 = int(max(0.0, cx - half_w)), int(max(0.0, cy - half_h))
    nx2, ny2 = int(min(float(width), cx + half_w)), int(min(float(height), cy + half_h))
    if nx2 <= nx1 or ny2 <= ny1:
        raise SpeakerInputError(
            f"Face box (x {x}, y {y}, w {w}, h {h}) covers no whole pixel of the {width}x{height} image "
            f"(crop [{nx1}, {ny1}, {nx2}, {ny2}]): move or enlarge it.")
    return image[:, ny1:ny2, nx1:nx2]
