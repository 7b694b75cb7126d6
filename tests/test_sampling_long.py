"""Long video: window planning, exact output length, the motion-frame conditioning of both modes,
streaming, progress over windows x steps, interruption, colour correction."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from comfyui_multitalk.models.encoders.vae import normalize_wan_latents
from comfyui_multitalk.models.errors import GenerationInputError
from comfyui_multitalk.models.sampling.colour import match_colours
from comfyui_multitalk.models.sampling.generate import GenerationInputs, Hooks, SamplerSettings, VideoGenerator
from comfyui_multitalk.models.sampling.plan import mirror_extend, plan_windows

H, W = 32, 48


def inputs(frames: int, speakers: int = 1) -> GenerationInputs:
    g = torch.Generator().manual_seed(1)
    masks = torch.ones(2, H // 8, W // 8) if speakers == 1 else torch.cat(
        [torch.zeros(1, 4, 6).index_fill_(2, torch.arange(3), 1), torch.zeros(1, 4, 6).index_fill_(2, torch.arange(3, 6), 1),
         torch.zeros(1, 4, 6)])
    return GenerationInputs(positive=torch.randn(5, 16, generator=g), negative=torch.randn(3, 16, generator=g),
                            reference=torch.rand(H, W, 3, generator=g), clip_features=torch.randn(1, 257, 1280, generator=g),
                            audio_features=[torch.randn(frames, 12, 768, generator=g) for _ in range(speakers)],
                            masks=masks)


@pytest.mark.parametrize("audio,window,motion,expected_windows", [
    (81, 81, 25, 1), (82, 81, 25, 2), (137, 81, 25, 2), (138, 81, 25, 3), (1000, 81, 25, 18), (30, 81, 9, 1),
    (1000, 81, 9, 14),
])
def test_plan_covers_the_audio_exactly(audio, window, motion, expected_windows):
    plan = plan_windows(audio, window, motion, "multitalk")
    assert len(plan.windows) == expected_windows
    kept = sum(window - w.keep_from for w in plan.windows)
    assert plan.covered_frames >= audio and kept >= audio
    assert expected_windows == 1 or kept - (window - motion) < audio  # no window more than needed
    assert [w.start for w in plan.windows] == [k * (window - motion) for k in range(expected_windows)]
    assert plan.output_frames == audio


def test_plan_notes_and_cap():
    short = plan_windows(30, 81, 25, "multitalk")
    assert "mirrored" in short.notes[0] and short.output_frames == 30
    capped = plan_windows(1000, 81, 25, "multitalk", max_frames=200)
    assert capped.output_frames == 200 and len(capped.windows) == 4 and "cap" in capped.notes[0].lower()
    single = plan_windows(500, 81, 25, "single")
    assert single.output_frames == 81 and "long-video mode" in single.notes[0]


@pytest.mark.parametrize("window,motion,message", [
    (80, 25, "not 4n\\+1"), (81, 81, "between 1 and the window"), (81, 0, "between 1 and the window"),
])
def test_bad_window_settings(window, motion, message):
    with pytest.raises(GenerationInputError, match=message):
        plan_windows(200, window, motion, "multitalk")


def test_mirror_extend_reflects_the_end():
    track = torch.arange(4)
    assert mirror_extend(track, 10).tolist() == [0, 1, 2, 3, 3, 2, 1, 0, 0, 1]


class Recorder:
    """Wraps the DiT: records each call's latent and condition."""

    def __init__(self, model):
        self.model, self.calls = model, []
        self.compute_dtype = model.compute_dtype

    def parameters(self):
        return self.model.parameters()

    def __call__(self, x, t, *args, **kwargs):
        self.calls.append(dict(x=x.clone(), t=t.clone(), y=args[2].clone()))
        return self.model(x, t, *args, **kwargs)


@pytest.mark.parametrize("mode", ["multitalk", "infinitetalk"])
def test_long_video_has_exactly_the_audio_frames(tiny_dit, tiny_vae, mode):
    settings = SamplerSettings(steps=2, mode=mode, window=9, motion_frames=5, seed=2)
    recorder = Recorder(tiny_dit)
    result = VideoGenerator(recorder, tiny_vae, inputs(23, speakers=2), settings).run()
    assert result.frames.shape == (23, H, W, 3) and result.frame_count == 23
    assert len(result.plan.windows) == 5  # 9, then 4 new frames per window: 9 + 4 * 4 = 25 >= 23
    assert len(recorder.calls) == 5 * 2  # one batched call (3 guidance passes) per step


def test_infinitetalk_writes_clean_motion_latents_every_step(tiny_dit, tiny_vae):
    settings = SamplerSettings(steps=3, mode="infinitetalk", window=9, motion_frames=5, seed=2)
    recorder = Recorder(tiny_dit)
    result = VideoGenerator(recorder, tiny_vae, inputs(13), settings).run()
    first_window = result.frames[:9]
    motion = normalize_wan_latents(tiny_vae.encode(first_window[-5:]))  # [1, 16, 2, h, w]
    second = recorder.calls[3:]
    for call in second:
        assert torch.allclose(call["x"][0, :, :2], motion[0], atol=1e-6)
    # re-anchored: window 2's condition is the reference image alone (one known frame)
    mask = second[0]["y"][0, :4]
    assert mask[:, 0].min() == 1 and mask[:, 1:].max() == 0


def test_multitalk_conditions_on_the_last_generated_frames(tiny_dit, tiny_vae):
    settings = SamplerSettings(steps=2, mode="multitalk", window=9, motion_frames=5, seed=2)
    recorder = Recorder(tiny_dit)
    result = VideoGenerator(recorder, tiny_vae, inputs(13), settings).run()
    known = result.frames[4:9]  # window 1's last 5 frames
    y = recorder.calls[2]["y"]
    expected = normalize_wan_latents(tiny_vae.encode(torch.cat([known, torch.full((4, H, W, 3), 0.5)])))
    assert torch.allclose(y[0, 4:], expected[0], atol=1e-5)
    mask = y[0, :4]  # 5 known pixel frames: frame 0 (latent 0) and frames 1-4 (latent 1); frames 5-8 unknown
    assert mask[:, :2].min() == 1 and mask[:, 2].max() == 0
    # the motion latents, re-noised to t0, lead the first latent of window 2
    t0 = recorder.calls[2]["t"][0] / 1000
    x = recorder.calls[2]["x"][0, :, :2]
    residual = (x - (1 - t0) * expected[0, :, :2]) / t0
    assert 0.8 < residual.std() < 1.2  # what is left is unit noise


def test_streamed_frames_progress_and_interrupt(tiny_dit, tiny_vae):
    settings = SamplerSettings(steps=2, mode="multitalk", window=9, motion_frames=5, seed=2)
    chunks, ticks = [], []
    hooks = Hooks(progress=lambda n, message: ticks.append(message), on_frames=chunks.append)
    generator = VideoGenerator(tiny_dit, tiny_vae, inputs(17), settings, hooks)
    result = generator.run()
    assert result.frames is None and sum(c.shape[0] for c in chunks) == 17 == result.frame_count
    # 3 windows x 2 steps, plus the VAE's latent frames: 3 encoded for the reference, 3 per later
    # window for its known frames, 3 decoded per window
    assert len(ticks) == generator.total_units == 3 * 2 + 3 + 2 * 3 + 3 * 3
    assert "window 3/3, step 2/2" in ticks and ticks[-1] == "window 3/3, decoding"

    def stop_after_three():  # Cancel is checked before every model call (and between VAE chunks)
        if len(recorder.calls) == 3:
            raise KeyboardInterrupt("stop")

    recorder = Recorder(tiny_dit)
    with pytest.raises(KeyboardInterrupt):
        VideoGenerator(recorder, tiny_vae, inputs(17), settings, Hooks(check_interrupt=stop_after_three)).run()
    assert len(recorder.calls) == 3


def test_bad_inputs_are_caught_before_any_compute(tiny_dit, tiny_vae):
    recorder = Recorder(tiny_dit)
    small = inputs(20)
    small.reference = torch.rand(8, 8, 3)
    with pytest.raises(GenerationInputError, match="8x8.*multiples of 16"):
        VideoGenerator(recorder, tiny_vae, small, SamplerSettings(window=9))
    with pytest.raises(GenerationInputError, match="2 audio tracks but the speaker layout has 1"):
        two = inputs(20, speakers=2)
        two.masks = torch.ones(2, 4, 6)
        VideoGenerator(recorder, tiny_vae, two, SamplerSettings(window=9))
    with pytest.raises(GenerationInputError, match="steps is 0"):
        VideoGenerator(recorder, tiny_vae, inputs(20), SamplerSettings(window=9, motion_frames=5, steps=0))
    assert recorder.calls == []


def test_colour_correction_moves_towards_the_reference():
    g = torch.Generator().manual_seed(0)
    reference = torch.rand(16, 16, 3, generator=g) * 0.5
    frames = (torch.rand(3, 16, 16, 3, generator=g) * 0.5 + 0.4).clamp(0, 1)
    assert torch.equal(match_colours(frames, reference, 0.0), frames)
    full = match_colours(frames, reference, 1.0)
    half = match_colours(frames, reference, 0.5)
    gap = lambda x: (x.mean(dim=(1, 2)) - reference.mean(dim=(0, 1))).abs().mean()  # noqa: E731
    assert gap(full) < 0.25 * gap(frames)
    assert torch.allclose(half, 0.5 * frames + 0.5 * full, atol=1e-6)


@pytest.mark.parametrize("strength", [1.0, 0.5])
def test_colour_correction_matches_the_official_transfer(strength):
    """tests/data/README.md: the official match_and_blend_colors on a seeded chunk."""
    case = load_file(str(Path(__file__).parent / "data" / "colour_official_case.safetensors"))
    to_image = lambda chunk: chunk[0].permute(1, 2, 3, 0).add(1).mul(0.5)  # noqa: E731  [-1,1] BCTHW -> THWC
    frames = to_image(case["source"]).clamp(0, 1)  # the VAE hands over frames clamped to 0..1
    reference = case["reference_uint8"].float().div(255).permute(1, 2, 0)
    expected = to_image(case[f"strength_{strength}"])
    assert (match_colours(frames, reference, strength) - expected).abs().max().item() <= 1e-4


def test_colour_correction_refuses_strengths_outside_0_to_1():
    frames = torch.rand(1, 8, 8, 3)
    with pytest.raises(GenerationInputError, match="outside 0..1"):
        match_colours(frames, frames[0], 1.5)


def test_infinitetalk_encodes_the_reference_condition_once(tiny_dit, tiny_vae):
    calls = []

    class CountingVAE:
        def encode(self, frames):
            calls.append(frames.shape[0])
            return tiny_vae.encode(frames)

        def decode(self, latent):
            return tiny_vae.decode(latent)

    settings = SamplerSettings(steps=1, mode="infinitetalk", window=9, motion_frames=5, seed=2)
    result = VideoGenerator(tiny_dit, CountingVAE(), inputs(17), settings).run()
    assert len(result.plan.windows) == 3
    assert calls == [9, 5, 5]  # the reference + grey window once, then each window's 5 motion frames
