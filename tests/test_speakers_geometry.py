"""Bucketing, resize-and-centre-crop and grid masks, checked against an independent
re-derivation of the official MultiTalk rules (written here from the rules, not imported)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from comfyui_multitalk.models.errors import SpeakerInputError
from comfyui_multitalk.models.speakers import (Box, build_speaker_layout, choose_bucket, crop_offsets,
                                               resize_crop_image, resize_crop_masks, resized_size)

# The official 480p table (ASPECT_RATIO_627): ratio key -> [height, width], in table order.
OFFICIAL_480 = {
    "0.26": (320, 1216), "0.38": (384, 1024), "0.50": (448, 896), "0.67": (512, 768),
    "0.82": (576, 704), "1.00": (640, 640), "1.22": (704, 576), "1.50": (768, 512),
    "1.86": (832, 448), "2.00": (896, 448), "2.50": (960, 384), "2.83": (1088, 384),
    "3.60": (1152, 320), "3.80": (1216, 320), "4.00": (1280, 320),
}
NO_FACES = staticmethod(lambda pixels: [])


def reference_bucket(h: int, w: int) -> tuple[int, int]:
    ratio = h / w
    key = sorted(OFFICIAL_480, key=lambda k: abs(float(k) - ratio))[0]
    return OFFICIAL_480[key]


def reference_resize_crop(pixels: np.ndarray, target: tuple[int, int]) -> np.ndarray:
    """Official image path: cover scale, ceil, PIL bilinear, torchvision-style centre crop."""
    h, w = pixels.shape[:2]
    scale = max(target[0] / h, target[1] / w)
    new_h, new_w = math.ceil(scale * h), math.ceil(scale * w)
    resized = np.asarray(Image.fromarray(pixels).resize((new_w, new_h), resample=Image.BILINEAR))
    top, left = int(round((new_h - target[0]) / 2.0)), int(round((new_w - target[1]) / 2.0))
    return resized[top:top + target[0], left:left + target[1]]


def reference_masks_to_latent(masks: torch.Tensor, target: tuple[int, int]) -> torch.Tensor:
    """Official mask path: nearest to the cover size, centre crop, nearest to H/8 x W/8, > 0."""
    h, w = masks.shape[1:]
    scale = max(target[0] / h, target[1] / w)
    new_h, new_w = math.ceil(scale * h), math.ceil(scale * w)
    resized = F.interpolate(masks[None].float(), size=(new_h, new_w), mode="nearest")[0]
    top, left = int(round((new_h - target[0]) / 2.0)), int(round((new_w - target[1]) / 2.0))
    cropped = resized[:, top:top + target[0], left:left + target[1]]
    latent = F.interpolate(cropped[None], size=(target[0] // 8, target[1] // 8), mode="nearest")[0]
    return (latent > 0).float()


SIZES = [(790, 1280), (1080, 1920), (1920, 1080), (733, 977), (1000, 1000), (300, 1200), (517, 389),
         (64, 300)]


@pytest.mark.parametrize("h,w", SIZES)
def test_bucket_choice_matches_official_rule(h, w):
    assert choose_bucket(h, w, "480p") == reference_bucket(h, w)


def test_bucket_hand_checked_values():
    assert choose_bucket(790, 1280, "480p") == (512, 768)    # ratio 0.617 -> key 0.67
    assert choose_bucket(1080, 1920, "480p") == (448, 896)   # 0.5625 -> 0.50
    assert choose_bucket(1080, 1920, "720p") == (704, 1280)  # 0.5625 -> 0.55
    assert choose_bucket(1920, 1080, "720p") == (1280, 704)  # 1.778 -> 1.82
    assert choose_bucket(100, 100, "720p") == (960, 960)
    assert resized_size(790, 1280, (512, 768)) == (512, 830)
    assert resized_size(1080, 1920, (448, 896)) == (504, 896)
    # torchvision's centre crop rounds half to even: excess 1 -> 0, 3 -> 2, 5 -> 2, 7 -> 4
    assert [crop_offsets((100 + d, 50), (100, 50))[0] for d in (1, 3, 5, 7)] == [0, 2, 2, 4]


def test_every_bucket_is_a_multiple_of_16():
    from comfyui_multitalk.models.speakers import BUCKETS

    for table in BUCKETS.values():
        for _, (bh, bw) in table:
            assert bh % 16 == 0 and bw % 16 == 0


@pytest.mark.parametrize("h,w", SIZES[:6])
def test_image_resize_crop_pixel_exact(h, w):
    rng = np.random.default_rng(h * 7 + w)
    pixels = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    target = reference_bucket(h, w)
    ours = resize_crop_image(torch.from_numpy(pixels.astype(np.float32) / 255.0)[None], target)
    expected = reference_resize_crop(pixels, target)
    assert ours.shape == (1, target[0], target[1], 3)
    assert torch.equal((ours[0] * 255).round().to(torch.uint8), torch.from_numpy(expected.copy()))


@pytest.mark.parametrize("h,w", [(790, 1280), (733, 977), (517, 389)])
def test_mask_and_image_stay_aligned(h, w):
    """Paint a red block on grey, use the same block as a mask: after bucketing, the mask
    covers red pixels and nothing but red, up to the bilinear seam (2 px when upscaling)."""
    pixels = np.full((h, w, 3), 128, dtype=np.uint8)
    mask = torch.zeros(1, h, w)
    top, left, bh, bw = h // 5, w // 3, h // 2, w // 4
    pixels[top:top + bh, left:left + bw] = (255, 0, 0)
    mask[0, top:top + bh, left:left + bw] = 1
    target = reference_bucket(h, w)
    image = resize_crop_image(torch.from_numpy(pixels.astype(np.float32) / 255)[None], target)[0]
    bucketed = resize_crop_masks(mask, target)[0] > 0
    red = (image[..., 0] > 0.99) & (image[..., 1] < 0.01)
    grey = (image - 128 / 255).abs().amax(dim=-1) < 1e-6
    inner = -F.max_pool2d(-bucketed[None, None].float(), 5, 1, 2)[0, 0] > 0  # eroded by 2 px
    outer = F.max_pool2d(bucketed[None, None].float(), 5, 1, 2)[0, 0] == 0   # 2 px away outside
    assert bool(red[inner].all()) and bool(grey[outer].all())
    assert int(inner.sum()) > 100


def test_official_two_speaker_default_layout_reproduced():
    """No faces, two speakers: the official default (halves, 5% margin) on the latent grid."""
    h, w = 790, 1280
    image = torch.rand(1, h, w, 3)
    layout = build_speaker_layout(image, 2, "480p", detect=lambda pixels: [])
    assert layout.sources == ["strip", "strip"]
    masks = torch.zeros(3, h, w)
    rows = slice(int(h * 0.05), int(h * 0.95))
    half = w // 2
    masks[0, rows, int(half * 0.05):int(half * 0.95)] = 1
    masks[1, rows, int(half * 0.05 + half):int(half * 0.95 + half)] = 1
    masks[2] = (masks[:2].sum(0) == 0).float()
    expected = reference_masks_to_latent(masks, (512, 768))
    assert torch.equal(layout.latent_masks(), expected)


def test_one_speaker_masks_are_all_ones():
    layout = build_speaker_layout(torch.rand(1, 200, 300, 3), 1, "480p", detect=NO_FACES)
    assert (layout.height, layout.width) == (512, 768)
    assert torch.equal(layout.latent_masks(), torch.ones(2, 64, 96))
    assert torch.equal(layout.token_masks(), torch.ones(2, 32, 48))
    assert torch.equal(layout.background(), torch.ones(512, 768))


def test_two_and_three_speakers_on_latent_and_token_grids():
    # 640x640 is its own bucket (no resize), so boxes map 1:1 onto the bucketed image.
    image = torch.rand(1, 640, 640, 3)
    two = build_speaker_layout(image, 2, "480p", boxes=[Box(0, 0, 320, 640), Box(320, 160, 320, 320)])
    latent, tokens = two.latent_masks(), two.token_masks()
    assert latent.shape == (3, 80, 80) and tokens.shape == (3, 40, 40)
    assert torch.equal(tokens[0], (torch.arange(40)[None, :] < 20).float().expand(40, 40))
    right = torch.zeros(40, 40)
    right[10:30, 20:] = 1
    assert torch.equal(tokens[1], right)
    assert torch.equal(tokens[2], 1 - tokens[0] - tokens[1])

    three = build_speaker_layout(image, 3, "480p",
                                 boxes=[Box(0, 64, 192, 576), Box(192, 64, 192, 576), Box(448, 64, 192, 576)])
    tokens = three.token_masks()
    assert tokens.shape == (4, 40, 40)
    assert tokens[:3].sum(dim=(1, 2)).tolist() == [12 * 36, 12 * 36, 12 * 36]
    assert torch.equal(tokens.sum(0), torch.ones(40, 40))  # speakers and background tile the grid
    assert float(tokens[3, :, 24:28].min()) == 1.0  # the gap between speakers 2 and 3


def test_unknown_resolution_is_reported():
    with pytest.raises(SpeakerInputError, match="1080p"):
        choose_bucket(100, 100, "1080p")
