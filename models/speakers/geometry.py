"""Reference-image geometry: aspect-ratio buckets, resize-and-centre-crop, grid resizing.

The sampler generates video at a bucketed size chosen from the reference image's aspect
ratio, so masks must go through exactly the same resize and crop as the image. The rules
below follow the official MultiTalk pipeline:

- bucket: the table entry whose ratio key (height / width) is nearest to the image's;
  ties go to the earlier (smaller-ratio) entry;
- resize: scale = max(target_h / h, target_w / w), new size = ceil(scale * h), ceil(scale * w);
  the image with Pillow's bilinear filter on 8-bit RGB, masks with torch nearest;
- crop: centred, offset = round((new - target) / 2) with Python's round (halves to even);
- latent grid: nearest resize to (H/8, W/8), then > 0; token grid: nearest to (H/16, W/16).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import SpeakerInputError

# height/width ratio key -> (height, width). "480p" is the official 627-pixel table
# (about 640x640 pixels of area), "720p" the 960 table.
BUCKETS: dict[str, tuple[tuple[float, tuple[int, int]], ...]] = {
    "480p": (
        (0.26, (320, 1216)), (0.38, (384, 1024)), (0.50, (448, 896)), (0.67, (512, 768)),
        (0.82, (576, 704)), (1.00, (640, 640)), (1.22, (704, 576)), (1.50, (768, 512)),
        (1.86, (832, 448)), (2.00, (896, 448)), (2.50, (960, 384)), (2.83, (1088, 384)),
        (3.60, (1152, 320)), (3.80, (1216, 320)), (4.00, (1280, 320)),
    ),
    "720p": (
        (0.22, (448, 2048)), (0.29, (512, 1792)), (0.36, (576, 1600)), (0.45, (640, 1408)),
        (0.55, (704, 1280)), (0.63, (768, 1216)), (0.76, (832, 1088)), (0.88, (896, 1024)),
        (1.00, (960, 960)), (1.14, (1024, 896)), (1.31, (1088, 832)), (1.50, (1152, 768)),
        (1.58, (1216, 768)), (1.82, (1280, 704)), (1.91, (1344, 704)), (2.20, (1408, 640)),
        (2.30, (1472, 640)), (2.67, (1536, 576)), (2.89, (1664, 576)), (3.62, (1856, 512)),
        (3.75, (1920, 512)),
    ),
}
# Draft sizes for quick previews and CPU tests: the 480p table scaled by 1/2 and 1/4 (sides stay
# multiples of 16). The released models were trained at 480p and 720p only.
BUCKETS["240p"] = tuple((ratio, (h // 2, w // 2)) for ratio, (h, w) in BUCKETS["480p"])
BUCKETS["120p"] = tuple((ratio, (h // 4, w // 4)) for ratio, (h, w) in BUCKETS["480p"])
RESOLUTIONS = tuple(BUCKETS)

LATENT_STRIDE = 8   # VAE spatial stride
TOKEN_STRIDE = 16   # VAE stride x patch size 2
# Below this a picture holds no usable face: blown up to a bucket it is a blur.
MIN_REFERENCE_SIDE = 64
# A bucket crop that keeps less of the picture than this gets a note (extreme aspect ratios).
MIN_KEPT_FRACTION = 0.6


def choose_bucket(height: int, width: int, resolution: str = "480p") -> tuple[int, int]:
    """(target_h, target_w) of the bucket whose ratio key is nearest to height / width."""
    if resolution not in BUCKETS:
        raise SpeakerInputError(
            f"Unknown resolution '{resolution}': choose one of {', '.join(RESOLUTIONS)}."
        )
    if height <= 0 or width <= 0:
        raise SpeakerInputError(f"The reference image is {width}x{height} pixels: it must not be empty; "
                                "connect a picture (Load Image).")
    ratio = height / width
    # min() keeps the first of equal distances, like a stable sort of the table.
    _, size = min(BUCKETS[resolution], key=lambda entry: abs(entry[0] - ratio))
    return size


def check_reference_size(height: int, width: int, target: tuple[int, int]) -> list[str]:
    """Refuse pictures too small to use; notes for crops that throw most of the picture away."""
    if min(height, width) < MIN_REFERENCE_SIDE:
        raise SpeakerInputError(
            f"The reference image is {width}x{height} pixels: give a picture at least {MIN_REFERENCE_SIDE} "
            f"pixels on each side (ideally about the bucket size, {target[1]}x{target[0]} here)."
        )
    resized = resized_size(height, width, target)
    kept = target[0] * target[1] / (resized[0] * resized[1])
    if kept >= MIN_KEPT_FRACTION:
        return []
    return [f"The {width}x{height} picture is much {'wider' if width * target[0] > height * target[1] else 'taller'} "
            f"than the nearest bucket ({target[1]}x{target[0]}): the centre crop keeps only {kept:.0%} of it. "
            "Crop or pad the picture to a closer aspect ratio to keep the people you need."]


def resized_size(height: int, width: int, target: tuple[int, int]) -> tuple[int, int]:
    """Size after the cover-scaling step (both sides >= the target)."""
    scale = max(target[0] / height, target[1] / width)
    return math.ceil(scale * height), math.ceil(scale * width)


def crop_offsets(resized: tuple[int, int], target: tuple[int, int]) -> tuple[int, int]:
    """(top, left) of the centred crop; Python round() sends halves to the even number."""
    return int(round((resized[0] - target[0]) / 2.0)), int(round((resized[1] - target[1]) / 2.0))


def image_to_uint8(image: torch.Tensor) -> np.ndarray:
    """ComfyUI IMAGE [1,H,W,3] or [H,W,3] float 0..1 -> uint8 [H,W,3] (exact for 8-bit sources)."""
    if image.dim() == 4:
        image = image[0]
    if image.dim() != 3 or image.shape[-1] < 3:
        raise SpeakerInputError(
            f"The reference image has shape {tuple(image.shape)}: expected an IMAGE [1,H,W,3] (an RGB "
            "picture); connect a Load Image output, or convert a grey/two-channel picture to RGB first."
        )
    pixels = image[..., :3].detach().float().cpu()
    if not bool(torch.isfinite(pixels).all()):
        raise SpeakerInputError("The reference image holds NaN or infinite values: it was produced by a failed "
                                "node upstream; load or generate the picture again.")
    pixels = pixels.clamp(0, 1) * 255.0
    return pixels.round().to(torch.uint8).numpy()


def resize_crop_pixels(pixels: np.ndarray, target: tuple[int, int]) -> np.ndarray:
    """uint8 RGB [H,W,3] -> uint8 [th,tw,3] at the bucket (Pillow bilinear, centre crop)."""
    from PIL import Image

    size = resized_size(pixels.shape[0], pixels.shape[1], target)
    if size != tuple(pixels.shape[:2]):
        pixels = np.asarray(Image.fromarray(pixels).resize((size[1], size[0]), resample=Image.BILINEAR))
    top, left = crop_offsets(size, target)
    return np.ascontiguousarray(pixels[top:top + target[0], left:left + target[1]])


def resize_crop_image(image: torch.Tensor, target: tuple[int, int]) -> torch.Tensor:
    """IMAGE [1,H,W,3] -> bucketed IMAGE [1,th,tw,3] (Pillow bilinear on 8-bit, centre crop)."""
    cropped = resize_crop_pixels(image_to_uint8(image), target)  # [th,tw,3]
    return torch.from_numpy(cropped.astype(np.float32) / 255.0)[None]


def resize_crop_masks(masks: torch.Tensor, target: tuple[int, int]) -> torch.Tensor:
    """Masks [S,H,W] at the reference size -> [S,th,tw], nearest resize and centre crop."""
    size = resized_size(masks.shape[-2], masks.shape[-1], target)
    resized = F.interpolate(masks[None].float(), size=size, mode="nearest")[0]  # [S,h',w']
    top, left = crop_offsets(size, target)
    return resized[:, top:top + target[0], left:left + target[1]].contiguous()


def to_grid(masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Masks [S,H,W] -> 0/1 float [S,h,w] by nearest resize and > 0 (latent and token grids)."""
    grid = F.interpolate(masks[None].float(), size=size, mode="nearest")[0]
    return (grid > 0).float()
