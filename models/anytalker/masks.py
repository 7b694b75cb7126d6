"""Face masks -> the model's inputs (FACTS.md §4, §7): expanded face regions, the 4 "dit mask"
channels of y, and the per-identity soft token masks.

Each face mask (at the source image's resolution) is expanded about its centre (width x1.2,
height x1.1); the sum of the expanded masks, bilinearly resized to the latent grid, marks the
face regions in y; each expanded mask, bilinearly resized to the token grid and repeated over
the latent frames, gates its identity's audio attention.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import SpeakerInputError

WIDTH_EXPANSION = 1.2
HEIGHT_EXPANSION = 1.1
VAE_TIME_STRIDE = 4


def _resize(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    # [H, W] -> [h, w], bilinear, align_corners False, no antialias (as the official)
    return F.interpolate(mask[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]


def expand_face_mask(mask: torch.Tensor, width_factor: float = WIDTH_EXPANSION,
                     height_factor: float = HEIGHT_EXPANSION) -> torch.Tensor:
    """[H, W] -> [H, W]: the bounding box of the pixels > 0.5 grown about its centre by the factors
    (sizes truncated, bounds clipped) and the box's content bilinearly stretched into it.

    Tensor arithmetic as the official (float32 centre and scaled sizes, int() truncation)."""
    if width_factor == 1.0 and height_factor == 1.0:
        return mask
    points = torch.nonzero(mask > 0.5)
    if points.numel() == 0:
        return mask
    (min_h, min_w), (max_h, max_w) = points.min(dim=0)[0], points.max(dim=0)[0]
    centre_h, centre_w = (min_h + max_h) / 2.0, (min_w + max_w) / 2.0
    new_h, new_w = int((max_h - min_h + 1) * height_factor), int((max_w - min_w + 1) * width_factor)
    height, width = mask.shape
    top, bottom = max(0, int(centre_h - new_h / 2.0)), min(height - 1, int(centre_h + new_h / 2.0))
    left, right = max(0, int(centre_w - new_w / 2.0)), min(width - 1, int(centre_w + new_w / 2.0))
    expanded = torch.zeros_like(mask)
    if bottom > top and right > left:
        content = mask[min_h:max_h + 1, min_w:max_w + 1]
        expanded[top:bottom + 1, left:right + 1] = _resize(content, (bottom - top + 1, right - left + 1))
    return expanded


def expand_face_masks(masks: torch.Tensor) -> torch.Tensor:
    """[N, H, W] face masks -> [N, H, W] expanded (float32)."""
    if masks.dim() != 3 or masks.shape[0] == 0:
        raise SpeakerInputError(f"Face masks must be [N, H, W] with N >= 1; got {tuple(masks.shape)}.")
    return torch.stack([expand_face_mask(m.float()) for m in masks])


def dit_mask(face_regions: torch.Tensor, latent_hw: tuple[int, int], frames: int, known: int = 1) -> torch.Tensor:
    """The 4 mask channels of y: [4, T, h, w] for `frames` = 4(T-1)+1 video frames.

    face_regions [H, W] is the sum of the expanded masks. Known pixel frames (the official: frame
    0 only; our windowed loop: the motion frames carried in) are all ones, later frames the resized
    face regions; frame 0 is repeated 4 times and the frames fold 4 per latent frame."""
    if frames < 1 or (frames - 1) % VAE_TIME_STRIDE:
        raise SpeakerInputError(f"{frames} video frames: the model needs 4n+1 (e.g. 81).")
    if not 1 <= known <= frames:
        raise SpeakerInputError(f"{known} known frames in a {frames}-frame window: give 1 to {frames}.")
    height, width = latent_hw
    regions = _resize(face_regions.float(), latent_hw)[None]
    pixel = torch.cat([torch.ones(known, height, width), regions.expand(frames - known, -1, -1)])  # [F, h, w]
    folded = torch.cat([pixel[:1].expand(VAE_TIME_STRIDE - 1, -1, -1), pixel])  # frame 0 four times
    return folded.view(-1, VAE_TIME_STRIDE, height, width).transpose(0, 1).contiguous()  # [4, T, h, w]


def token_masks(expanded: torch.Tensor, token_hw: tuple[int, int]) -> torch.Tensor:
    """Expanded masks [N, H, W] -> soft masks on the token grid [N, h, w] (bilinear, straight
    from the image resolution); the model repeats them over the latent frames."""
    return torch.stack([_resize(m.float(), token_hw) for m in expanded])
