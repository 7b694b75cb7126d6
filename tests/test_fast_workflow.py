"""The shipped few-step workflow: the chain lightx2v's 4-step LoRA needs (fp8 DiT -> LoRA -> run
options -> sampler with the preset), and a run end to end on the tiny models through the command
line, with the LoRA applied and the preset's schedule used."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest
from safetensors.torch import save_file

from comfyui_multitalk.cli.demo_media import write_demo_media
from comfyui_multitalk.cli.main import main
from comfyui_multitalk.cli.tiny_weights import write_tiny_weights
from comfyui_multitalk.cli.workflow_files import shipped_api_workflow
from comfyui_multitalk.models.dit.tiny import random_dit_state_dict, tiny_dit_config
from comfyui_multitalk.models.video_io import read_video_frames

sys.path.insert(0, str(Path(__file__).parent))
from lora_helpers import distill_style_lora  # noqa: E402
from workflow_helpers import api  # noqa: E402

NAME = "multitalk_fast_4step"
# lightx2v's Wan2.1 step-distill setting as its configs and the MultiTalk README give it: 4 steps,
# sample shift 5, no text guidance (scale 1), audio guidance 2 "after applying LoRA".
LIGHTX2V = {"steps": 4, "shift": 5.0, "text_scale": 1.0, "audio_scale": 2.0}


def test_the_model_goes_through_the_lora_and_run_options_to_the_sampler():
    prompt = api(NAME)
    (sampler,) = [node for node in prompt.values() if node["class_type"] == "MultiTalkSampler"]
    options = prompt[sampler["inputs"]["model"][0]]
    lora = prompt[options["inputs"]["model"][0]]
    loader = prompt[lora["inputs"]["model"][0]]
    assert [n["class_type"] for n in (options, lora, loader)] == [
        "MultiTalkModelOptions", "MultiTalkLoraLoader", "MultiTalkModelLoader"]
    assert "lightx2v" in lora["inputs"]["lora"] and lora["inputs"]["strength"] == 1.0
    assert "fp8" in loader["inputs"]["model"] and options["inputs"]["fp8_matmul"] is True
    assert prompt[sampler["inputs"]["options"][0]]["inputs"]["preset"] == "lightx2v_4step"
    assert {k: sampler["inputs"][k] for k in LIGHTX2V} == LIGHTX2V  # the widgets agree with the preset


@pytest.mark.slow
@pytest.mark.parametrize("cache", ["off", "magcache"])
def test_runs_end_to_end_on_the_tiny_models(tmp_path, caplog, capsys, cache):
    weights = write_tiny_weights(str(tmp_path / "models"))
    lora = tmp_path / "models" / "tiny_lightx2v_style.safetensors"
    save_file(distill_style_lora(random_dit_state_dict(tiny_dit_config(), seed=0)), str(lora))
    media = write_demo_media(str(tmp_path / "input"), seconds=0.8)
    sets = [f"wav2vec2.model={weights.wav2vec}", f"MultiTalk model.model={weights.dit}",
            f"MultiTalk model.audio_weights={weights.audio_weights}", f"15.lora={lora}",
            f"Text encoder.text_encoder={weights.text_encoder}", f"CLIP vision.clip_vision={weights.clip_vision}",
            f"VAE.vae={weights.vae}", f"Reference image.image={media.reference}",
            f"Speaker 1 voice.audio={media.voices[0]}", "Speakers.resolution=120p", "Sampler.window_frames=21",
            "Sampler.motion_frames=5", "Sampler.steps=40",  # the preset's 4 steps win over the widget
            f"31.cache={cache}"]
    argv = ["run", shipped_api_workflow(NAME), *[a for s in sets for a in ("--set", s)],
            "--output-dir", str(tmp_path / "out")]
    with caplog.at_level(logging.INFO, logger="MultiTalk"):
        assert main(argv) == 0
    (video,) = (tmp_path / "out").rglob("*.mp4")
    frames, fps, audio_seconds = read_video_frames(str(video))
    assert (frames, fps) == (20, 25.0) and audio_seconds == pytest.approx(0.8, abs=0.03)  # 0.8 s of voice
    text = caplog.text
    assert "Preset lightx2v 4-step: 4 steps on timesteps 1000, 750, 500, 250, shift 5, sampler lcm" in text
    # 2 blocks x (4 self- + 4 cross-attention + 2 FFN layers), each a low-rank weight and a bias delta
    assert "(strength 1): 40 weights patched" in text
    if cache == "magcache":  # the cache sees the LoRA model through the run options; each pass counted
        assert "MagCache (threshold 0.12" in text and "cond " in text and "no_audio " in text
    captured = capsys.readouterr()
    shown = captured.out + captured.err  # the progress lines
    assert "window 1/1, step 4/4" in shown and "step 5/" not in shown
