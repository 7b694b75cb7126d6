"""Dubbing windows on tiny weights against the official InfiniteTalk video path
(wan/multitalk.py, see docs/dubbing.md): each window anchored (y and CLIP) on the source frame at
its start, the last frame repeating past the end, motion frames carried as in InfiniteTalk mode,
and shot segments starting fresh on their own first frame."""
from __future__ import annotations

import torch

from comfyui_multitalk.models.dubbing.conditions import TimelineConditions
from comfyui_multitalk.models.dubbing.source import SourceVideo
from comfyui_multitalk.models.encoders.vae import normalize_wan_latents
from comfyui_multitalk.models.sampling.conditioning import decode_latent, encode_frames, window_condition
from comfyui_multitalk.models.sampling.generate import GenerationInputs, Hooks, SamplerSettings, VideoGenerator
from comfyui_multitalk.models.speakers.layout import SpeakerLayout

H, W = 32, 48
WINDOW, MOTION = 9, 5


def source_video(codes, count: int, shots=(0,)) -> SourceVideo:
    frames = (codes.frames(count, H, W) * 255).round().to(torch.uint8)
    return SourceVideo(frames, 25.0, list(range(count)), (H, W), "120p", shots=list(shots))


def dub(codes, recorder, vae, source: SourceVideo, audio_frames: int, seen: list):
    g = torch.Generator().manual_seed(1)
    layout = SpeakerLayout(source.first_frame(), H, W, torch.ones(1, H, W), ["auto"], resolution="120p")
    positive = torch.randn(5, 16, generator=g)
    conditions = TimelineConditions(source.frame(0), torch.zeros(1, 257, 1280), positive, layout, source=source)
    inputs = GenerationInputs(positive=positive, negative=torch.randn(3, 16, generator=g), reference=source.frame(0),
                              clip_features=torch.zeros(1, 257, 1280),
                              audio_features=[torch.randn(audio_frames, 12, 768, generator=g)],
                              masks=layout.latent_masks(), conditions=conditions)

    def clip_encoder(frame):  # CLIP features that name the frame they were computed from
        seen.append(codes.read(frame)[0])
        return torch.full((1, 257, 1280), float(seen[-1]))

    settings = SamplerSettings(steps=1, mode="infinitetalk", window=WINDOW, motion_frames=MOTION, seed=2,
                               colour_strength=0.0)
    return VideoGenerator(recorder, vae, inputs, settings, Hooks(clip_encoder=clip_encoder)).run()


def official_keyframes(source_frames: int, audio_frames: int) -> list[int]:
    """generate_infinitetalk: audio_start_idx = 0, then += frame_num - motion_frame while the audio
    lasts; the keyframe is the source frame at audio_start_idx, or the last one past the end."""
    starts, start = [], 0
    while True:
        starts.append(start)
        if start + WINDOW >= audio_frames:
            return [min(s, source_frames - 1) for s in starts]
        start += WINDOW - MOTION


def test_each_window_is_anchored_on_the_source_frame_at_its_start(codes, recorder, tiny_vae):
    seen: list[int] = []
    source = source_video(codes, 15)
    result = dub(codes, recorder, tiny_vae, source, 22, seen)
    keyframes = official_keyframes(15, 22)
    assert keyframes == [0, 4, 8, 12, 14] and len(recorder.calls) == len(keyframes)  # 1 step per window
    for call, key in zip(recorder.calls, keyframes):
        y, _ = window_condition(tiny_vae, source.frame(key)[None], WINDOW)
        assert torch.allclose(call["y"], y, atol=1e-5)
        assert float(call["clip"].flatten()[0]) == key  # CLIP from the same frame
    assert seen == [0, 4, 8, 12, 14]  # each keyframe's CLIP
    assert result.frames.shape == (22, H, W, 3) and result.frame_count == 22


def test_motion_frames_carry_over_as_in_infinitetalk_mode(codes, recorder, tiny_vae):
    source = source_video(codes, 20)
    result = dub(codes, recorder, tiny_vae, source, 13, [])
    first, second = recorder.calls
    keyframe = normalize_wan_latents(tiny_vae.encode(source.frame(0)[None]))  # window 0: the keyframe in slot 0
    assert torch.allclose(first["x"][0, :, :1], keyframe[0], atol=1e-5)
    motion = normalize_wan_latents(tiny_vae.encode(result.frames[4:9]))  # window 0's last 5 frames, clean
    assert torch.allclose(second["x"][0, :, :2], motion[0], atol=1e-5)


def test_shot_segments_start_fresh_on_their_own_first_frame(codes, recorder, tiny_vae):
    source = source_video(codes, 30, shots=(0, 11))
    result = dub(codes, recorder, tiny_vae, source, 30, [])
    plan = result.plan
    assert [(w.start, w.segment, w.fresh) for w in plan.windows] == [
        (0, 0, True), (4, 0, False), (11, 1, True), (15, 1, False), (19, 1, False), (23, 1, False)]
    assert sum(w.keep_to - w.keep_from for w in plan.windows) == 30 == result.frames.shape[0]
    fresh = recorder.calls[2]
    y, _ = window_condition(tiny_vae, source.frame(11)[None], WINDOW)
    assert torch.allclose(fresh["y"], y, atol=1e-5)
    keyframe = normalize_wan_latents(tiny_vae.encode(source.frame(11)[None]))
    assert torch.allclose(fresh["x"][0, :, :1], keyframe[0], atol=1e-5)  # its own keyframe, not motion frames
    carried = normalize_wan_latents(tiny_vae.encode(result.frames[6:11]))  # what motion from window 1 would be
    assert not torch.allclose(fresh["x"][0, :, :2], carried[0], atol=1e-2)
    # the segment's first output frame decodes from its keyframe's latent alone (the VAE is causal in time)
    alone = decode_latent(tiny_vae, encode_frames(tiny_vae, source.frame(11)[None]))
    assert torch.allclose(result.frames[11], alone[0], atol=1e-4)


def test_audio_shorter_than_the_source_stops_the_dub(codes, recorder, tiny_vae):
    result = dub(codes, recorder, tiny_vae, source_video(codes, 40), 11, [])
    assert result.frames.shape[0] == 11 and len(recorder.calls) == 2


def lab_mean(image: torch.Tensor) -> torch.Tensor:
    from skimage import color

    return torch.from_numpy(color.rgb2lab(image.double().numpy()).reshape(-1, 3).mean(0))


def test_colour_correction_pulls_each_segment_towards_its_first_keyframe(codes, recorder, tiny_vae):
    # official: the colour reference is the clip's first keyframe (each shot is its own clip)
    frames = (codes.frames(20, H, W, offset=200) * 255).round().to(torch.uint8)
    frames[10:, ..., 2] = 90  # the second shot is much yellower
    source = SourceVideo(frames, 25.0, list(range(20)), (H, W), "120p", shots=[0, 10])
    g = torch.Generator().manual_seed(1)
    layout = SpeakerLayout(source.first_frame(), H, W, torch.ones(1, H, W), ["auto"], resolution="120p")
    conditions = TimelineConditions(source.frame(0), torch.zeros(1, 257, 1280), torch.randn(5, 16), layout,
                                    source=source)
    inputs = GenerationInputs(positive=torch.randn(5, 16), negative=torch.randn(3, 16), reference=source.frame(0),
                              clip_features=torch.zeros(1, 257, 1280),
                              audio_features=[torch.randn(15, 12, 768, generator=g)], masks=layout.latent_masks(),
                              conditions=conditions)
    settings = SamplerSettings(steps=1, mode="infinitetalk", window=WINDOW, motion_frames=MOTION, colour_strength=1.0)
    hooks = Hooks(clip_encoder=lambda frame: torch.zeros(1, 257, 1280))
    result = VideoGenerator(recorder, tiny_vae, inputs, settings, hooks).run()
    first, second = lab_mean(source.frame(0)), lab_mean(source.frame(10))
    for frame in (3, 12, 14):
        reference = first if frame < 10 else second
        other = second if frame < 10 else first
        mean = lab_mean(result.frames[frame])
        assert (mean - reference).norm() < 0.5 * (mean - other).norm()
