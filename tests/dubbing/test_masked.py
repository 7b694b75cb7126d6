"""Masked dubbing: after a full run on tiny weights every pixel outside the head region (less
the feather) is the source's, bit for bit; the region follows the tracked faces; the blends."""
from __future__ import annotations

import math

import pytest
import torch

from comfyui_multitalk.models.dubbing.conditions import TimelineConditions
from comfyui_multitalk.models.dubbing.masking import DubMasking, DubMaskSettings
from comfyui_multitalk.models.dubbing.masks import SourceBlend, feathered, latent_mask
from comfyui_multitalk.models.dubbing.source import SourceVideo, source_from_images
from comfyui_multitalk.models.errors import DubbingInputError
from comfyui_multitalk.models.sampling.generate import GenerationInputs, Hooks, SamplerSettings, VideoGenerator
from comfyui_multitalk.models.speakers.detect import Face
from comfyui_multitalk.models.speakers.layout import SpeakerLayout

H, W = 48, 64
FACE = 8  # face box side, pixels
MARGIN, FEATHER, EVERY = 0.5, 4.0, 2


def face_x(index: int) -> int:
    return 8 + 2 * index  # the face walks right 2 pixels a frame


def source_video(codes, count: int) -> SourceVideo:
    frames = (codes.frames(count, H, W) * 255).round().to(torch.uint8)
    return SourceVideo(frames, 25.0, list(range(count)), (H, W), "120p")


def detector(codes):
    def detect(pixels):  # the face of the frame the pixels show, wherever the index says it is
        index = codes.read(torch.from_numpy(pixels)[None])[0]
        return [Face(face_x(index), 16, FACE, FACE, 20.0)]
    return detect


def run_masked(codes, vae, model, source, frames: int, settings: DubMaskSettings, detect=None):
    g = torch.Generator().manual_seed(3)
    layout = SpeakerLayout(source.first_frame(), H, W, torch.ones(1, H, W), ["auto"], resolution="120p")
    masking = DubMasking(settings, source, detect or detector(codes))
    conditions = TimelineConditions(source.frame(0), torch.zeros(1, 257, 1280), torch.randn(5, 16, generator=g),
                                    layout, source=source, masking=masking)
    inputs = GenerationInputs(positive=torch.randn(5, 16, generator=g), negative=torch.randn(3, 16, generator=g),
                              reference=source.frame(0), clip_features=torch.zeros(1, 257, 1280),
                              audio_features=[torch.randn(frames, 12, 768, generator=g)], masks=layout.latent_masks(),
                              conditions=conditions)
    settings = SamplerSettings(steps=1, mode="infinitetalk", window=9, motion_frames=5, seed=4, colour_strength=0.0)
    hooks = Hooks(clip_encoder=lambda frame: torch.randn(1, 257, 1280, generator=g))
    return VideoGenerator(model, vae, inputs, settings, hooks).run()


def near_faces(frames: range, count: int) -> torch.Tensor:
    """bool [H, W]: within FEATHER (+1 for rounding) of any grown face box the window may have
    seen: faces from EVERY frames before it to its end (the tracker samples every EVERY frames)."""
    ys, xs = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
    near = torch.zeros(H, W, dtype=torch.bool)
    for f in range(max(frames.start - EVERY, 0), min(frames.stop, count)):
        x0, y0 = face_x(f) - MARGIN * FACE, 16 - MARGIN * FACE
        x1, y1 = face_x(f) + FACE + MARGIN * FACE, 16 + FACE + MARGIN * FACE
        dx = torch.clamp(torch.maximum(x0 - xs, xs - x1), min=0)
        dy = torch.clamp(torch.maximum(y0 - ys, ys - y1), min=0)
        near |= torch.sqrt(dx ** 2 + dy ** 2) <= FEATHER + 1.5
    return near


def test_pixels_outside_the_head_region_are_the_source(codes, tiny_dit, tiny_vae):
    source = source_video(codes, 24)
    settings = DubMaskSettings(margin=MARGIN, feather=FEATHER, detect_every=EVERY)
    result = run_masked(codes, tiny_vae, tiny_dit, source, 17, settings)
    assert result.frames.shape == (17, H, W, 3)
    for window in result.plan.windows:
        first, end = window.new_frames
        near = near_faces(range(window.start, window.start + 9), source.num_frames)
        for frame in range(first, end):
            out, src = result.frames[frame], source.frame(frame)
            assert torch.equal(out[~near], src[~near]), f"frame {frame} changed outside the head region"
            x = face_x(frame)
            assert (out[16:16 + FACE, x:x + FACE] - src[16:16 + FACE, x:x + FACE]).abs().mean() > 0.01
    # the region follows the face: where the face was at frame 0 is the source's at the end
    assert torch.equal(result.frames[16][16:24, 8:16], source.frame(16)[16:24, 8:16])


def test_given_masks_per_source_frame_follow_the_source_clock(codes):
    images = codes.frames(30, 64, 64)  # 30 fps, bucketed to 160x160 (scale 2.5, no crop)
    source = source_from_images(images, 30.0, "120p")
    masks = torch.zeros(30, 64, 64)
    for i in range(30):
        masks[i, 20:30, 2 * i:2 * i + 2] = 1  # a 2-column strip moving right with the source frame
    masking = DubMasking(DubMaskSettings(masks=masks), source)
    region = masking.region(10, 9, (0, 1 << 30), torch.ones(1, 160, 160))
    shown = {math.floor(k * 30 / 25 + 1e-9) for k in range(10, 19)}  # source frames under timeline 10..18
    columns = {c for i in shown for c in (2 * i, 2 * i + 1)}
    expected = [math.floor(j * 64 / 160) in columns for j in range(160)]  # nearest resize 64 -> 160
    assert region[60].tolist() == expected and not region[40].any()


def test_feather_falls_linearly_to_zero():
    region = torch.zeros(5, 20, dtype=torch.bool)
    region[:, 5] = True
    weight = feathered(region, 8.0)
    assert weight[2, 5] == 1 and weight[2, 9] == pytest.approx(0.5) and weight[2, 13] == 0 and weight[2, 19] == 0
    assert torch.equal(feathered(torch.zeros(4, 4, dtype=torch.bool), 8.0), torch.zeros(4, 4))


def test_latents_outside_follow_the_noised_source_and_end_on_it():
    pixel = torch.zeros(32, 64)
    pixel[8:16, 24:32] = 1.0  # latent cells (1..2, 3) composited
    weight = latent_mask(pixel)
    assert weight[1:2, 3].min() == 1 and weight[0, 2] == 1 and weight[1, 5] == 0.5 and weight[1, 6] == 0
    source_latent, latent, noise = torch.randn(3, 1, 16, 3, 4, 8).unbind(0)
    blend = SourceBlend(weight, pixel, source_latent, torch.rand(9, 32, 64, 3))
    end = blend.latent(latent, noise, torch.tensor(0.0))
    outside = weight == 0
    assert torch.equal(end[..., outside], source_latent[..., outside])
    middle = blend.latent(latent, noise, torch.tensor(250.0))
    assert torch.allclose(middle[..., outside], 0.75 * source_latent[..., outside] + 0.25 * noise[..., outside])
    assert torch.equal(middle[..., weight == 1], latent[..., weight == 1])


def test_a_speaker_without_a_face_regenerates_their_region_with_a_note(codes):
    source = source_video(codes, 12)
    masking = DubMasking(DubMaskSettings(), source, detect=lambda pixels: [])
    regions = torch.zeros(1, H, W)
    regions[0, :, 10:30] = 1
    region = masking.region(0, 9, (0, 12), regions)
    assert torch.equal(region, regions[0] > 0) and "no face found" in masking.notes[0]


def test_bad_settings_are_named():
    with pytest.raises(DubbingInputError, match="margin"):
        DubMaskSettings(margin=-1)
    with pytest.raises(DubbingInputError, match="empty"):
        DubMaskSettings(masks=torch.zeros(2, 8, 8))
