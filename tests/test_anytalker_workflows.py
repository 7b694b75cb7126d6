"""The shipped AnyTalker workflows: built as the official run is set up, and each one run end to end
by the command line on tiny AnyTalker weights (and by the demo's --family anytalker)."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from comfyui_multitalk.cli.demo import DemoSettings, run_demo
from comfyui_multitalk.cli.demo_media import write_demo_media
from comfyui_multitalk.cli.native_nodes import RunContext
from comfyui_multitalk.cli.run import read_workflow, run_workflow
from comfyui_multitalk.cli.tiny_weights import write_tiny_weights
from comfyui_multitalk.cli.workflow_files import shipped_api_workflow
from comfyui_multitalk.models.video_io import probe_video

sys.path.insert(0, str(Path(__file__).parent))
from workflow_helpers import api, one  # noqa: E402

WORKFLOWS = {"anytalker_two_speakers": ("parallel", 2), "anytalker_three_speakers": ("sequential", 3)}
SECONDS = 0.2  # of voice per speaker: 5 frames at 24 fps keep the runs short


@pytest.mark.parametrize("name", WORKFLOWS)
def test_workflow_is_set_up_as_the_official_run(name):
    prompt = api(name)
    _, loader = one(prompt, "MultiTalkModelLoader")
    _, wav2vec = one(prompt, "MultiTalkWav2VecLoader")
    encode_id, encode = one(prompt, "MultiTalkAudioEncode")
    faces_id, faces = one(prompt, "MultiTalkSpeakers")
    _, clip = one(prompt, "MultiTalkClipVisionEncode")
    _, sampler = one(prompt, "MultiTalkSampler")
    assert loader["inputs"]["audio_weights"] == "none" and loader["inputs"]["model"].endswith(".pth")
    assert "960h" in wav2vec["inputs"]["model"]
    timeline, tracks = WORKFLOWS[name]
    assert sum(1 for key in encode["inputs"] if key.startswith("audio_")) == tracks
    # the official audio path: 24 fps, no loudness change, pad (parallel) or concat (sequential) mode
    assert (encode["inputs"]["fps"], encode["inputs"]["normalize_loudness"], encode["inputs"]["timeline_mode"]) == \
        (24.0, False, timeline)
    assert faces["inputs"]["audio"] == [encode_id, 0]  # AnyTalker audio makes Speakers place faces
    assert clip["inputs"]["image"] == [faces_id, 2] == sampler["inputs"]["image"]  # the picture as is
    assert clip["inputs"]["crop"] == "none" and "clip_vision" in sampler["inputs"]
    official = dict(mode="single", sampler="unipc", text_scale=4.5, shift=0.0, color_correction=0.0)
    assert {k: sampler["inputs"][k] for k in official} == official


@pytest.mark.slow
def test_command_line_runs_the_three_speaker_workflow(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("MULTITALK_QUIET", "1")
    weights = write_tiny_weights(str(tmp_path / "models"))
    media = write_demo_media(str(tmp_path / "input"), SECONDS)
    shutil.copy(media.voices[0], tmp_path / "input" / "speaker3.wav")
    voices = [*media.voices, str(tmp_path / "input" / "speaker3.wav")]
    assignments = [f"wav2vec2.model={weights.anytalker_wav2vec}", f"AnyTalker model.model={weights.anytalker_dit}",
                   f"Text encoder.text_encoder={weights.text_encoder}",
                   f"CLIP vision.clip_vision={weights.clip_vision}",
                   f"VAE.vae={weights.vae}", f"Reference image.image={media.reference}", "Faces.resolution=120p",
                   "Audio.trim_ends=0.1, 0.1, 0.1", "Sampler.steps=1",
                   *[f"Speaker {k + 1} voice.audio={v}" for k, v in enumerate(voices)]]
    output = tmp_path / "out" / "talk.mp4"
    context = RunContext(input_dir=str(tmp_path / "input"), output_dir=str(tmp_path / "out"), output_video=str(output))
    saved = run_workflow(read_workflow(shipped_api_workflow("anytalker_three_speakers")), assignments, context,
                         lambda line: None)
    probe = probe_video(str(output))
    # tracks in turn (concat): 3 x 0.1 s at 24 fps = 7.2 -> 8 frames -> 4n+1 = 5
    assert (probe.frames, probe.fps) == (5, 24.0)
    assert probe.audio_seconds == pytest.approx(5 / 24, abs=0.05)
    assert sorted(Path(p).name for p in saved) == ["talk.mp4", "talk_speakers.png", "talk_timeline.png"]
    # two people drawn for three tracks: the faces go to equal strips, and the node says so
    assert any("for 3 automatic speaker(s)" in r.getMessage() and "strips" in r.getMessage() for r in caplog.records)


@pytest.mark.slow
def test_demo_runs_the_two_speaker_workflow_on_tiny_anytalker_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("MULTITALK_QUIET", "1")
    settings = DemoSettings(seconds=SECONDS, steps=1, family="anytalker")
    saved = run_demo(str(tmp_path / "demo.mp4"), settings=settings, log=lambda line: None)
    assert [Path(p).name for p in saved] == ["demo.mp4", "demo_timeline.png", "demo_speakers.png"]
    probe = probe_video(saved[0])
    # parallel tracks (pad): ceil(0.2 s x 24) = 5 frames = 4n+1, at 24 fps (not the official 16 quirk)
    assert (probe.frames, probe.fps) == (5, 24.0)
    assert probe.audio_seconds == pytest.approx(5 / 24, abs=0.05)
