"""The sampler node with a source video: output frames = audio frames, the soundtrack aligned
on frame 0, checks before any model work, and speaker regions placed per segment."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from comfyui_multitalk.models.dubbing.conditions import segment_layout
from comfyui_multitalk.models.errors import GenerationInputError
from comfyui_multitalk.models.speakers.build import build_speaker_layout
from comfyui_multitalk.models.speakers.detect import Face
from comfyui_multitalk.models.speakers.regions import Box
from comfyui_multitalk.nodes.audio_nodes import MultiTalkAudioEncode
from comfyui_multitalk.nodes.dubbing_nodes import MultiTalkDubbingMask, MultiTalkSourceVideo
from comfyui_multitalk.nodes.sampler_nodes import MultiTalkSampler
from comfyui_multitalk.nodes.speaker_nodes import MultiTalkSpeakers

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from node_fixtures import model, wav2vec  # noqa: E402,F401  (module fixtures)

SETTINGS = dict(steps=1, shift=0.0, text_scale=5.0, audio_scale=4.0, seed=1, sampler="euler", mode="infinitetalk",
                window_frames=9, motion_frames=5, color_correction=0.0, max_frames=0, routing="lrope", apg=False)


class StubClip:
    def encode_image(self, image, crop=False):
        return type("Out", (), {"penultimate_hidden_states": torch.full((1, 257, 1280), float(image.mean()))})()


def dubbing_graph(wav2vec, codes, seconds: float):
    images = codes.frames(20, 80, 64)  # ratio 1.25: the 120p bucket of key 1.22, 176 x 144
    source, first, _, _, _ = MultiTalkSourceVideo().load("120p", False, 27.0, 0.5, 0.0, images=images,
                                                        fps=30.0)["result"]
    t = torch.arange(int(seconds * 16000)) / 16000
    voice = {"waveform": (0.3 * torch.sin(2 * torch.pi * 180 * t))[None, None], "sample_rate": 16000}
    audio, mixed, frames, _ = MultiTalkAudioEncode().encode(wav2vec, audio_1=voice, timeline_mode="parallel",
                                                            normalize_loudness=True, fps=25,
                                                            routing_mode="lrope")["result"]
    layout = MultiTalkSpeakers().place(first, num_speakers=1, resolution="120p", boxes="", audio=audio)["result"][0]
    g = torch.Generator().manual_seed(3)
    text = lambda n: [[torch.randn(1, n, 16, generator=g), {}]]  # noqa: E731
    clip = type("ClipOut", (), {"penultimate_hidden_states": torch.randn(1, 257, 1280, generator=g)})()
    inputs = dict(positive=text(6), negative=text(4), clip_vision_output=clip, image=layout.image, audio=audio,
                  speakers=layout, source_video=source, clip_vision=StubClip())
    return inputs, mixed, frames


def test_the_dub_has_the_audio_frames_and_its_soundtrack(wav2vec, model, tiny_vae, codes):
    inputs, mixed, frames = dubbing_graph(wav2vec, codes, 0.3)
    dub_mask = MultiTalkDubbingMask().settings(0.5, 8, 4)[0]
    out = MultiTalkSampler().sample(model=model, vae=tiny_vae, dub_mask=dub_mask, **inputs, **SETTINGS)
    video, soundtrack, fps, _ = out["result"]
    assert frames == 7 and video.shape[0] == 7 and fps == 25.0
    assert soundtrack["waveform"].shape[-1] == 7 * 640  # 16 kHz: exactly the frames' duration from frame 0
    assert torch.equal(soundtrack["waveform"], mixed["waveform"][..., :7 * 640])
    notes = out["ui"].get("multitalk_notes", [])
    assert any("the dub stops there" in n for n in notes)  # 7 audio frames of the source's 17


@pytest.mark.parametrize("change, message", [
    (dict(mode="multitalk"), "needs mode infinitetalk"),
    (dict(clip_vision=None), "connect clip_vision"),
    (dict(source_video=None, dub_mask="mask"), "without a source_video"),
])
def test_dubbing_inputs_are_checked_before_sampling(wav2vec, model, tiny_vae, codes, change, message):
    inputs, _, _ = dubbing_graph(wav2vec, codes, 0.3)
    settings = dict(SETTINGS)
    for key, value in change.items():
        (settings if key in settings else inputs)[key] = value
    if inputs.get("dub_mask") == "mask":
        inputs["dub_mask"] = MultiTalkDubbingMask().settings(0.5, 8, 4)[0]
    with pytest.raises(GenerationInputError, match=message):
        MultiTalkSampler().sample(model=model, vae=tiny_vae, **inputs, **settings)


def test_source_and_speakers_must_share_the_bucket(wav2vec, model, tiny_vae, codes):
    inputs, _, _ = dubbing_graph(wav2vec, codes, 0.3)
    inputs["source_video"] = MultiTalkSourceVideo().load("240p", False, 27.0, 0.5, 0.0, images=codes.frames(5, 80, 64),
                                                         fps=25.0)["result"][0]
    with pytest.raises(GenerationInputError, match="same resolution"):
        MultiTalkSampler().sample(model=model, vae=tiny_vae, **inputs, **SETTINGS)


def faces_at(*xs: int):
    return lambda pixels: [Face(x, 40, 24, 24, 30.0) for x in xs]


def test_automatic_speakers_are_placed_again_on_each_segment_and_given_ones_stay():
    frame = torch.rand(1, 160, 320, 3)  # 120p bucket of ratio 0.5: 112 x 224
    layout = build_speaker_layout(frame, 2, "120p", detect=faces_at(30, 150))
    assert layout.sources == ["auto", "auto"]
    later = torch.rand(1, layout.height, layout.width, 3)
    moved = segment_layout(layout, later, faces_at(90, 180))
    centre = lambda mask: float(torch.nonzero(mask)[:, 1].float().mean())  # noqa: E731
    assert centre(moved.masks[0]) > centre(layout.masks[0]) + 20
    assert centre(moved.masks[1]) > centre(layout.masks[1])
    pinned = build_speaker_layout(frame, 2, "120p", boxes=[Box(0, 0, 100, 100), Box(200, 0, 100, 100)])
    assert segment_layout(pinned, later, faces_at(90, 180)) is pinned
    assert segment_layout(layout, layout.image, faces_at(90, 180)) is layout  # the first segment's own frame
