"""Prompt and image timelines on tiny weights: which prompt and image each window used, each
prompt encoded once, prompts blended across a change, and no motion carried across an image
change."""
from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from comfyui_multitalk.models.dubbing.conditions import TimelineConditions
from comfyui_multitalk.models.encoders.vae import normalize_wan_latents
from comfyui_multitalk.models.errors import DubbingInputError, GenerationInputError
from comfyui_multitalk.models.sampling.conditioning import window_condition
from comfyui_multitalk.models.sampling.generate import GenerationInputs, Hooks, SamplerSettings, VideoGenerator
from comfyui_multitalk.models.speakers.layout import SpeakerLayout
from comfyui_multitalk.nodes.timeline_nodes import MultiTalkImageTimeline, MultiTalkPromptTimeline

H, W = 32, 48
STRIDE = 4  # window 9, motion 5


class CountingT5:
    """A text encoder that makes one embedding per text (length 5 + its word count) and counts calls."""

    def __init__(self):
        self.calls: list[str] = []

    def conditioning(self, text: str) -> list:
        self.calls.append(text)
        g = torch.Generator().manual_seed(zlib.crc32(text.encode()))
        return [[torch.randn(1, 5 + len(text.split()), 16, generator=g), {}]]


def generate(recorder, vae, conditions: TimelineConditions, frames: int, mode: str = "infinitetalk", seen=None):
    g = torch.Generator().manual_seed(5)
    inputs = GenerationInputs(positive=conditions.positive_text, negative=torch.randn(3, 16, generator=g),
                              reference=conditions.reference, clip_features=conditions.clip_features,
                              audio_features=[torch.randn(frames, 12, 768, generator=g)],
                              masks=conditions.layout.latent_masks(), conditions=conditions)
    settings = SamplerSettings(steps=1, mode=mode, window=9, motion_frames=5, seed=2, colour_strength=0.0)

    def clip_encoder(frame):
        (seen if seen is not None else []).append(frame.clone())
        return torch.full((1, 257, 1280), float(frame.mean()))

    return VideoGenerator(recorder, vae, inputs, settings, Hooks(clip_encoder=clip_encoder)).run()


def conditions_for(reference: torch.Tensor, **timelines) -> TimelineConditions:
    layout = SpeakerLayout(reference[None], H, W, torch.ones(1, H, W), ["auto"], resolution="120p")
    return TimelineConditions(reference, torch.zeros(1, 257, 1280), torch.zeros(4, 16), layout, **timelines)


def active(starts_s: list[float], frame: int) -> int:
    """The entry whose start frame (first frame at or after its time, 25 fps) is the last <= frame."""
    starts = [int(np.ceil(s * 25 - 1e-9)) for s in starts_s]
    return max(i for i, s in enumerate(starts) if s <= frame)


def test_each_window_uses_the_prompt_active_at_its_start_and_each_prompt_is_encoded_once(recorder, tiny_vae):
    t5 = CountingT5()
    texts = ["they talk calmly", "the woman laughs", "they talk calmly"]
    timeline, report = MultiTalkPromptTimeline().build(
        "0: they talk calmly | 0.6: the woman laughs\n0.9: they talk calmly", "window_start", t5=t5)
    assert t5.calls == ["they talk calmly", "the woman laughs"]  # two distinct prompts, one encode each
    embedding = {text: t5.conditioning(text)[0][0][0] for text in set(texts)}
    assert not torch.equal(embedding["they talk calmly"], embedding["the woman laughs"])
    result = generate(recorder, tiny_vae, conditions_for(torch.rand(H, W, 3), prompts=timeline), 30)
    starts = [w.start for w in result.plan.windows]
    assert starts == [0, 4, 8, 12, 16, 20, 24]
    for call, start in zip(recorder.calls, starts):
        expected = embedding[texts[active([0, 0.6, 0.9], start)]]
        assert torch.equal(call["context"][0], expected)  # the cond pass's text
    assert "frame 15 (0.60 s): the woman laughs" in report


def test_blend_mixes_the_prompts_by_the_frames_each_window_adds(recorder, tiny_vae):
    t5 = CountingT5()
    timeline, _ = MultiTalkPromptTimeline().build("0: calm | 0.6: the woman laughs", "blend", t5=t5)
    calm, laugh = (t5.conditioning(text)[0][0][0] for text in ("calm", "the woman laughs"))
    generate(recorder, tiny_vae, conditions_for(torch.rand(H, W, 3), prompts=timeline), 21)
    # window 2 starts at 8 and adds frames 13..16: 13, 14 calm, 15, 16 laughing
    mixed = 0.5 * torch.nn.functional.pad(calm, (0, 0, 0, laugh.shape[0] - calm.shape[0])) + 0.5 * laugh
    assert torch.allclose(recorder.calls[2]["context"][0], mixed)
    assert torch.equal(recorder.calls[1]["context"][0], calm)  # adds 9..12, all calm
    assert torch.equal(recorder.calls[3]["context"][0], laugh)  # adds 17..20


def test_preencoded_prompts_go_in_order():
    first, second = torch.randn(1, 4, 16), torch.randn(1, 6, 16)
    timeline, _ = MultiTalkPromptTimeline().build("0: a | 2: b", "window_start", conditioning_1=[[first, {}]],
                                                  conditioning_2=[[second, {}]])
    assert torch.equal(timeline.embeddings[timeline.active(49)], first[0])
    assert torch.equal(timeline.embeddings[timeline.active(50)], second[0])
    with pytest.raises(DubbingInputError, match="2 entries but 1 conditionings"):
        MultiTalkPromptTimeline().build("0: a | 2: b", "window_start", conditioning_1=[[first, {}]])


def pictures() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    return torch.rand(1, H, W, 3, generator=g), torch.rand(1, 2 * H, 2 * W, 3, generator=g)


@pytest.mark.parametrize("mode", ["infinitetalk", "multitalk"])
def test_an_image_change_starts_a_fresh_window_on_the_new_image(recorder, tiny_vae, mode):
    first, second = pictures()
    timeline, shown = MultiTalkImageTimeline().build(first, "0, 0.6", image_2=second)
    assert torch.equal(shown, first)
    pixels = (second[0].numpy() * 255).round().astype("uint8")  # image 2 bucketed: halved, bilinear on 8 bits
    second_fitted = torch.from_numpy(np.array(Image.fromarray(pixels).resize((W, H), Image.BILINEAR))).float() / 255
    seen: list[torch.Tensor] = []
    result = generate(recorder, tiny_vae, conditions_for(first[0], images=timeline), 30, mode, seen)
    windows = result.plan.windows
    assert [(w.start, w.fresh) for w in windows] == [(0, True), (4, False), (8, False), (15, True), (19, False),
                                                      (23, False)]
    assert result.frames.shape[0] == 30
    change = windows[3]
    y, _ = window_condition(tiny_vae, second_fitted[None], 9)
    assert torch.allclose(recorder.calls[change.index]["y"], y, atol=1e-5)
    if mode == "infinitetalk":  # every window re-anchors on its segment's image
        for window, call in zip(windows, recorder.calls):
            image = first[0] if window.start < 15 else second_fitted
            assert torch.allclose(call["y"], window_condition(tiny_vae, image[None], 9)[0], atol=1e-5)
        anchor = normalize_wan_latents(tiny_vae.encode(second_fitted[None]))
        assert torch.allclose(recorder.calls[change.index]["x"][0, :, :1], anchor[0], atol=1e-5)
        assert [float(s.mean()) for s in seen] == [float(first.mean()), float(second_fitted.mean())]  # once each
    carried = normalize_wan_latents(tiny_vae.encode(result.frames[10:15]))  # what motion frames would have been
    assert not torch.allclose(recorder.calls[change.index]["x"][0, :, :2], carried[0], atol=1e-2)


def test_single_window_mode_refuses_segments(recorder, tiny_vae):
    first, second = pictures()
    timeline, _ = MultiTalkImageTimeline().build(first, "0, 0.2", image_2=second)
    with pytest.raises(GenerationInputError, match="Single-window mode"):
        generate(recorder, tiny_vae, conditions_for(first[0], images=timeline), 20, "single")
