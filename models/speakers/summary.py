"""A speaker layout as plain data for the speaker editor in the browser (web/js): the bucket and
how the reference image was resized and cropped into it, and each speaker's region as the DiT
sees it (the 16x16-pixel token grid) with its bounding box in reference-image pixels, the unit
of the Speakers node's `boxes` input."""
from __future__ import annotations

import math

import torch

from .geometry import TOKEN_STRIDE, crop_offsets, resized_size, to_grid
from .layout import SpeakerLayout


def _bounding_box(mask: torch.Tensor) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the 1-pixels of a [H, W] mask, x1/y1 exclusive (zeros when empty)."""
    ys, xs = torch.nonzero(mask > 0, as_tuple=True)
    if ys.numel() == 0:
        return 0, 0, 0, 0
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def to_reference_box(box: tuple[int, int, int, int], layout: SpeakerLayout) -> list[int]:
    """A bucket-pixel box (x0, y0, x1, y1) -> [x, y, width, height] in reference-image pixels,
    clipped to the picture (the inverse of the resize and centre crop)."""
    source_h, source_w = layout.source_size
    resized_h, resized_w = resized_size(source_h, source_w, (layout.height, layout.width))
    top, left = crop_offsets((resized_h, resized_w), (layout.height, layout.width))
    scale_x, scale_y = resized_w / source_w, resized_h / source_h
    nearest = lambda v: int(math.floor(v + 0.5))  # noqa: E731  halves up, as the editor's Math.round
    x0 = max(0, nearest((box[0] + left) / scale_x))
    y0 = max(0, nearest((box[1] + top) / scale_y))
    x1 = min(source_w, nearest((box[2] + left) / scale_x))
    y1 = min(source_h, nearest((box[3] + top) / scale_y))
    return [x0, y0, max(x1 - x0, 1), max(y1 - y0, 1)]


def layout_summary(layout: SpeakerLayout) -> dict:
    """JSON-ready description of `layout` for the editor."""
    source_h, source_w = layout.source_size
    resized_h, resized_w = resized_size(source_h, source_w, (layout.height, layout.width))
    top, left = crop_offsets((resized_h, resized_w), (layout.height, layout.width))
    grid_size = (layout.height // TOKEN_STRIDE, layout.width // TOKEN_STRIDE)
    grid = to_grid(layout.masks, grid_size)  # [S, h, w]
    speakers = []
    for index in range(layout.num_speakers):
        rows = ["".join("1" if v > 0 else "0" for v in row.tolist()) for row in grid[index]]
        speakers.append({"track": index + 1, "source": layout.sources[index],
                         "box": to_reference_box(_bounding_box(layout.masks[index]), layout), "grid": rows})
    return {"ok": True, "width": layout.width, "height": layout.height, "resolution": layout.resolution,
            "source_width": source_w, "source_height": source_h, "resized_width": resized_w,
            "resized_height": resized_h, "left": left, "top": top, "grid_size": list(grid_size),
            "speakers": speakers, "notes": list(layout.notes)}
