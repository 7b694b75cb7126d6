"""The shipped dubbing and timeline workflows: built for their topic, runnable outside ComfyUI,
and the two-person dubbing run end to end by the command line on tiny weights."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import soundfile
import torch

from comfyui_multitalk.cli.demo_media import draw_two_people, voice
from comfyui_multitalk.cli.executor import Executor
from comfyui_multitalk.cli.native_nodes import RunContext, stand_in_factories
from comfyui_multitalk.cli.registry import NodeRegistry
from comfyui_multitalk.cli.run import read_workflow, run_workflow
from comfyui_multitalk.cli.tiny_weights import write_tiny_weights
from comfyui_multitalk.cli.workflow_files import shipped_api_workflow
from comfyui_multitalk.models.video_io import probe_video, write_mp4

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from workflow_helpers import api, one  # noqa: E402

DUBBING = ["multitalk_dubbing", "multitalk_dubbing_two_speakers", "multitalk_dubbing_masked"]


@pytest.mark.parametrize("name", DUBBING)
def test_dubbing_workflows_anchor_on_a_loaded_video(name):
    prompt = api(name)
    video, _ = one(prompt, "LoadVideo")
    source, source_node = one(prompt, "MultiTalkSourceVideo")
    _, sampler = one(prompt, "MultiTalkSampler")
    _, speakers = one(prompt, "MultiTalkSpeakers")
    assert source_node["inputs"]["video"] == [video, 0] and sampler["inputs"]["source_video"] == [source, 0]
    assert speakers["inputs"]["image"] == [source, 1]  # regions placed on the source's first frame
    assert source_node["inputs"]["resolution"] == speakers["inputs"]["resolution"]
    assert sampler["inputs"]["mode"] == "infinitetalk" and "clip_vision" in sampler["inputs"]
    _, encode = one(prompt, "MultiTalkAudioEncode")
    tracks = sum(1 for key in encode["inputs"] if key.startswith("audio_"))
    assert tracks == (2 if "two_speakers" in name else 1)
    assert ("dub_mask" in sampler["inputs"]) == name.endswith("masked")


def test_prompt_timeline_workflow_feeds_the_sampler():
    prompt = api("multitalk_prompt_timeline")
    timeline, node = one(prompt, "MultiTalkPromptTimeline")
    _, sampler = one(prompt, "MultiTalkSampler")
    loader, _ = one(prompt, "MultiTalkTextEncoderLoader")
    assert sampler["inputs"]["prompt_timeline"] == [timeline, 0] and node["inputs"]["t5"] == [loader, 0]
    assert "6.5:" in node["inputs"]["timeline"]


@pytest.mark.parametrize("name", DUBBING + ["multitalk_prompt_timeline"])
def test_every_node_runs_outside_comfyui(name, tmp_path):
    executor = Executor(api(name), NodeRegistry(stand_in_factories(RunContext(str(tmp_path)))))
    executor.check(executor.order())  # raises when a node has no command-line stand-in


@pytest.mark.slow
def test_command_line_dubs_two_people_across_a_cut(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("MULTITALK_QUIET", "1")
    inputs = tmp_path / "input"
    inputs.mkdir()
    weights = write_tiny_weights(str(tmp_path / "models"))
    picture = torch.from_numpy(draw_two_people()).float() / 255
    frames = torch.stack([torch.roll(picture, k, dims=1) for k in range(15)])
    frames[6:] = frames[6:].flip(-1)  # a cut at 0.2 s: other colours
    write_mp4(str(inputs / "source.mp4"), frames, 30.0)
    for k, pitch in enumerate((140, 220)):
        soundfile.write(str(inputs / f"speaker{k + 1}.wav"), voice(0.4, pitch, [(0.05, 0.35)], k), 16000)
    assignments = [f"wav2vec2.model={weights.wav2vec}", f"MultiTalk model.model={weights.dit}",
                   f"MultiTalk model.audio_weights={weights.audio_weights}",
                   f"Text encoder.text_encoder={weights.text_encoder}",
                   f"CLIP vision.clip_vision={weights.clip_vision}", f"VAE.vae={weights.vae}",
                   "Speakers.resolution=120p", "Source frames.resolution=120p", "Source frames.min_shot_seconds=0.2",
                   "Sampler.steps=1", "Sampler.window_frames=9", "Sampler.motion_frames=5"]
    output = tmp_path / "out" / "dub.mp4"
    context = RunContext(input_dir=str(inputs), output_dir=str(tmp_path / "out"), output_video=str(output))
    lines: list[str] = []
    run_workflow(read_workflow(shipped_api_workflow("multitalk_dubbing_two_speakers")), assignments, context,
                 lines.append)
    probe = probe_video(str(output))
    assert (probe.frames, probe.fps) == (10, 25.0)  # 0.4 s of voice at 25 fps
    assert probe.audio_start == pytest.approx(0.0, abs=1e-3) and probe.audio_seconds == pytest.approx(0.4, abs=0.03)
    segments = [r.getMessage() for r in caplog.records if "segments, each starting fresh" in r.getMessage()]
    assert segments and "at frame(s) 5" in segments[0]  # the cut at source frame 6 of 30 fps = timeline frame 5
