"""Speaker regions from boxes and strips, and the rule for pixels claimed twice.

Box convention: (x, y, width, height) with x, y the top-left corner, in pixels of the
reference image, or as fractions of its width and height when all four numbers are <= 1.
"""
from __future__ import annotations

import re
from typing import NamedTuple, Optional

import torch

from ..errors import SpeakerInputError

OVERLAP_RULES = ("nearest_center", "smaller_region", "keep")
STRIP_MARGIN = 0.05  # the official default layout's margin (face_scale)


class Box(NamedTuple):
    x: float
    y: float
    w: float
    h: float


_AUTO_WORDS = {"", "auto", "-"}


def parse_boxes(text: str) -> list[Optional[Box]]:
    """One box per line, "x, y, w, h" (commas or spaces); a blank line or "auto" -> None.

    Trailing blank lines are dropped, so the list length is the number of lines given.
    """
    lines = (text or "").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    boxes: list[Optional[Box]] = []
    for number, line in enumerate(lines, start=1):
        word = line.strip().lower()
        if word in _AUTO_WORDS:
            boxes.append(None)
            continue
        parts = [p for p in re.split(r"[,\s;]+", word) if p]
        try:
            values = [float(p) for p in parts]
        except ValueError:
            values = []
        if len(values) != 4:
            raise SpeakerInputError(
                f"Box line {number} reads '{line.strip()}': write four numbers 'x, y, width, height' "
                "(pixels, or fractions 0..1), or 'auto' / an empty line for automatic placement."
            )
        boxes.append(Box(*values))
    return boxes


def box_to_pixels(box: Box, height: int, width: int) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) in pixels; fractions when all four numbers are <= 1."""
    if all(v <= 1.0 for v in box):
        return box.x * width, box.y * height, (box.x + box.w) * width, (box.y + box.h) * height
    return box.x, box.y, box.x + box.w, box.y + box.h


def box_to_mask(box: Box, height: int, width: int, track: int) -> tuple[torch.Tensor, Optional[str]]:
    """0/1 mask [H,W] of a box on the reference image, and a note when it had to be clipped."""
    text = f"({box.x:g}, {box.y:g}, {box.w:g}, {box.h:g})"
    if box.w <= 0 or box.h <= 0:
        raise SpeakerInputError(
            f"Box of speaker {track} {text} has a width or height <= 0: write 'x, y, width, height' "
            "with a positive width and height."
        )
    x0, y0, x1, y1 = box_to_pixels(box, height, width)
    if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
        raise SpeakerInputError(
            f"Box of speaker {track} {text} lies outside the {width}x{height} reference image: "
            "use pixels of that image (or fractions 0..1) as 'x, y, width, height'."
        )
    note = None
    if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
        note = f"Speaker {track}: box {text} reaches past the {width}x{height} image and was clipped."
    cols = slice(int(max(x0, 0)), int(min(x1, width)))
    rows = slice(int(max(y0, 0)), int(min(y1, height)))
    mask = torch.zeros(height, width)
    mask[rows, cols] = 1.0
    if mask.sum() == 0:
        raise SpeakerInputError(
            f"Box of speaker {track} {text} covers no whole pixel of the {width}x{height} image: "
            "make it larger."
        )
    return mask, note


def strip_mask(index: int, count: int, height: int, width: int) -> torch.Tensor:
    """Mask [H,W] of vertical strip `index` of `count` with a 5% margin on every side.

    For two strips this is the official default layout (left and right halves).
    """
    strip = width // count
    left = int(strip * STRIP_MARGIN + index * strip)
    right = int(strip * (1 - STRIP_MARGIN) + index * strip)
    top, bottom = int(height * STRIP_MARGIN), int(height * (1 - STRIP_MARGIN))
    mask = torch.zeros(height, width)
    mask[top:bottom, left:right] = 1.0
    return mask


def region_centers(masks: torch.Tensor) -> torch.Tensor:
    """Centroids [S,2] (row, col) of 0/1 masks [S,H,W]."""
    rows = torch.arange(masks.shape[1], dtype=torch.float32)
    cols = torch.arange(masks.shape[2], dtype=torch.float32)
    area = masks.sum(dim=(1, 2)).clamp(min=1.0)
    cy = (masks.sum(dim=2) * rows).sum(dim=1) / area
    cx = (masks.sum(dim=1) * cols).sum(dim=1) / area
    return torch.stack([cy, cx], dim=1)


def resolve_overlaps(masks: torch.Tensor, rule: str = "nearest_center") -> torch.Tensor:
    """Give every pixel claimed by several speakers to one of them.

    - "nearest_center": the claimant whose region centroid is nearest to the pixel;
    - "smaller_region": the claimant with the smallest region (fewest pixels);
    - "keep": leave overlaps as they are (the official pipeline's behaviour).
    Ties go to the earlier track. masks: 0/1 [S,H,W]; returns the same shape.
    """
    if rule not in OVERLAP_RULES:
        raise SpeakerInputError(f"Unknown overlap rule '{rule}': choose one of {', '.join(OVERLAP_RULES)}.")
    claims = masks > 0
    shared = claims.sum(dim=0) > 1  # [H,W]
    if rule == "keep" or not bool(shared.any()):
        return masks.clone()
    rows, cols = torch.nonzero(shared, as_tuple=True)  # K contested pixels
    contested = claims[:, rows, cols]  # [S,K]
    if rule == "nearest_center":
        centers = region_centers(masks.float())  # [S,2]
        cost = (rows[None].float() - centers[:, :1]) ** 2 + (cols[None].float() - centers[:, 1:]) ** 2
    else:
        cost = masks.float().sum(dim=(1, 2))[:, None].expand(-1, rows.numel()).clone()
    cost = torch.where(contested, cost, torch.full_like(cost, float("inf")))
    winner = cost.argmin(dim=0)  # first minimum -> earlier track on ties
    out = masks.clone()
    out[:, rows, cols] = 0.0
    out[winner, rows, cols] = 1.0
    return out
