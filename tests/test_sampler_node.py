"""MultiTalk Sampler node end to end on tiny weights: audio node -> speakers node -> sampler,
in memory and streamed to an mp4; inputs of the wrong shape are rejected before sampling."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

from comfyui_multitalk.models.errors import GenerationInputError, OutputPathError
from comfyui_multitalk.models.output_files import note_input, run_scope
from comfyui_multitalk.models.video_io import read_video_frames
from comfyui_multitalk.nodes.audio_nodes import MultiTalkAudioEncode
from comfyui_multitalk.nodes.sampler_nodes import MultiTalkSampler
from comfyui_multitalk.nodes.speaker_nodes import MultiTalkSpeakers

sys.path.insert(0, str(Path(__file__).resolve().parents[0]))
from node_fixtures import model, wav2vec  # noqa: E402,F401  (module fixtures)

SETTINGS = dict(steps=2, shift=0.0, text_scale=5.0, audio_scale=4.0, seed=1, sampler="euler", mode="multitalk",
                window_frames=17, motion_frames=5, color_correction=0.0, max_frames=0, routing="lrope", apg=False)


def speech(seconds: float, pitch: float) -> dict:
    t = torch.arange(int(seconds * 16000)) / 16000
    wave = 0.3 * torch.sin(2 * torch.pi * pitch * t) * (0.6 + 0.4 * torch.sin(2 * torch.pi * 3 * t))
    return {"waveform": wave[None, None], "sample_rate": 16000}


def graph(wav2vec, speakers: int, seconds: float = 0.3):
    tracks = {f"audio_{k + 1}": speech(seconds, 150 + 60 * k) for k in range(speakers)}
    audio, _, frames, _ = MultiTalkAudioEncode().encode(wav2vec, timeline_mode="sequential", normalize_loudness=True,
                                                        fps=25, routing_mode="lrope", **tracks)["result"]
    image = torch.rand(1, 100, 150, 3, generator=torch.Generator().manual_seed(2))
    layout = MultiTalkSpeakers().place(image, num_speakers=speakers, resolution="120p", boxes="", audio=audio)
    g = torch.Generator().manual_seed(3)
    conditioning = lambda n: [[torch.randn(1, n, 16, generator=g), {}]]  # noqa: E731
    clip = type("ClipOut", (), {"penultimate_hidden_states": torch.randn(1, 257, 1280, generator=g)})()
    return dict(positive=conditioning(6), negative=conditioning(4), clip_vision_output=clip, image=image,
                audio=audio, speakers=layout["result"][0]), frames


def test_two_speakers_in_memory(model, tiny_vae, wav2vec):
    inputs, frames = graph(wav2vec, speakers=2)
    out = MultiTalkSampler().sample(model, vae=tiny_vae, **inputs, **SETTINGS)
    video, audio, fps, path = out["result"]
    assert out["ui"]["multitalk_notes"] == [  # shown on the node by web/js/multitalk_notes.js
        "The audio covers 15 frames, less than one 17-frame window: the audio is mirrored to fill the window "
        "and the video trimmed back to 15 frames."]
    height, width = inputs["speakers"].height, inputs["speakers"].width
    assert frames == 15 and video.shape == (15, height, width, 3) and fps == 25.0 and path == ""
    assert audio["waveform"].shape[-1] == 15 * 16000 // 25
    assert 0 <= video.min() and video.max() <= 1


def test_streamed_to_mp4_with_soundtrack(model, tiny_vae, wav2vec, tmp_path):
    inputs, frames = graph(wav2vec, speakers=1, seconds=0.5)
    existing = tmp_path / "talk.mp4"
    existing.write_bytes(b"an earlier video")  # never replaced silently: the stream gets a numbered name
    result = MultiTalkSampler().sample(model, vae=tiny_vae, **inputs, **SETTINGS, stream_to=str(existing))
    video, audio, fps, path = result["result"]
    out = tmp_path / "talk_00001_.mp4"
    assert result["ui"]["multitalk_notes"][0] == f"stream_to '{existing}' exists: streaming to '{out}' instead."
    assert "mirrored" in result["ui"]["multitalk_notes"][1]  # 12 frames of audio in a 17-frame window
    assert existing.read_bytes() == b"an earlier video" and sorted(os.listdir(tmp_path)) == ["talk.mp4", out.name]
    count, video_fps, audio_seconds = read_video_frames(path)
    assert path == str(out) and count == frames == 12 and video_fps == 25.0  # one window, trimmed to the audio
    assert audio_seconds == pytest.approx(frames / 25, abs=0.1)
    assert video.shape[0] == 1  # only the last frame stays in memory


def test_stream_to_is_checked_before_sampling(model, tiny_vae, wav2vec, tmp_path, monkeypatch):
    inputs, _ = graph(wav2vec, speakers=1)
    voice = tmp_path / "voice.mp4"  # a video whose sound the run reads as a voice
    voice.write_bytes(b"the user's video")
    moved = []
    monkeypatch.setattr(model, "to_device", lambda: moved.append(1))
    with run_scope():
        note_input(str(voice))
        with pytest.raises(OutputPathError, match=f"The output '{voice}' is the file '{voice}', which this run reads"):
            MultiTalkSampler().sample(model, vae=tiny_vae, **inputs, **SETTINGS, stream_to=f" {voice} ")
    with pytest.raises(OutputPathError, match=r"'.webm' is not a container .*Use .mp4"):
        MultiTalkSampler().sample(model, vae=tiny_vae, **inputs, **SETTINGS, stream_to=str(tmp_path / "talk.webm"))
    assert moved == [] and voice.read_bytes() == b"the user's video" and os.listdir(tmp_path) == ["voice.mp4"]


def test_speaker_count_mismatch_is_caught_first(model, tiny_vae, wav2vec):
    inputs, _ = graph(wav2vec, speakers=2)
    one_speaker, _ = graph(wav2vec, speakers=1)
    inputs["speakers"] = one_speaker["speakers"]
    with pytest.raises(GenerationInputError, match="2 audio tracks but the speaker layout has 1"):
        MultiTalkSampler().sample(model, vae=tiny_vae, **inputs, **SETTINGS)


def test_window_not_4n_plus_1(model, tiny_vae, wav2vec):
    inputs, _ = graph(wav2vec, speakers=1)
    with pytest.raises(GenerationInputError, match="Window length 10 frames is not 4n\\+1"):
        MultiTalkSampler().sample(model, vae=tiny_vae, **inputs, **{**SETTINGS, "window_frames": 10})


def test_options_preset_and_cache_reach_the_notes(model, tiny_vae, wav2vec):
    from comfyui_multitalk.nodes.sampler_options import MultiTalkSamplerOptions

    inputs, frames = graph(wav2vec, speakers=1)
    options = MultiTalkSamplerOptions().build("fusionix_8step", "2, 2, 2, 2, 1, 1, 1, 1", "magcache", -1.0, -1, -1,
                                              2)["result"][0]
    out = MultiTalkSampler().sample(model, vae=tiny_vae, **inputs, **SETTINGS, options=options)
    notes = out["ui"]["multitalk_notes"]
    assert notes[0].startswith("Preset FusioniX 8-step: 8 steps") and "2, 2, 2, 2, 1, 1, 1, 1" in notes[1]
    # 8 steps: MagCache may skip from step 1 (20%); the pass without audio is dropped at the audio-1 steps
    assert notes[-1].startswith("MagCache (threshold 0.12, may skip steps 1-7): skipped steps per pass, over all "
                                "windows: cond ") and "no_audio " in notes[-1] and "/4" in notes[-1]
    assert out["result"][0].shape[0] == frames
