"""Training from the command line: the shipped training workflow prepares a cache from clips,
trains the audio adapter a few steps, and the saved file loads like multitalk.safetensors."""
from __future__ import annotations

import os

import pytest
from safetensors import safe_open

from comfyui_multitalk.cli.native_nodes import RunContext
from comfyui_multitalk.cli.run import read_workflow, run_workflow
from comfyui_multitalk.cli.tiny_weights import write_tiny_weights
from comfyui_multitalk.cli.workflow_files import shipped_api_workflow
from comfyui_multitalk.models import load_dit
from comfyui_multitalk.models.dit.keys import is_audio_key
from comfyui_multitalk.models.training.tiny import write_synthetic_clip

WORKFLOW = shipped_api_workflow("multitalk_train_audio_adapter")


@pytest.mark.slow
def test_training_workflow_runs_from_the_command_line(tmp_path, monkeypatch):
    monkeypatch.setenv("MULTITALK_QUIET", "1")
    weights = write_tiny_weights(str(tmp_path / "models"))
    clips = tmp_path / "clips"
    clips.mkdir()
    write_synthetic_clip(str(clips), "clip0", seconds=0.5)
    adapter = tmp_path / "my_adapter"
    assignments = [
        f"MultiTalk model.model={weights.dit}", f"MultiTalk model.audio_weights={weights.audio_weights}",
        f"Text encoder.text_encoder={weights.text_encoder}", f"CLIP vision.clip_vision={weights.clip_vision}",
        f"VAE.vae={weights.vae}", f"wav2vec2.model={weights.wav2vec}",
        f"Prepare dataset.clips_folder={clips}", f"Prepare dataset.cache_folder={tmp_path / 'cache'}",
        "Prepare dataset.window_frames=9", "Prepare dataset.resolution=120p",
        "Prepare dataset.require_faces=false",  # a drawn face: the detector finds none
        f"Train audio adapter.output_name={adapter}", "Train audio adapter.steps=3",
        "Train audio adapter.warmup_steps=1", "Train audio adapter.save_every=0",
    ]
    saved = run_workflow(read_workflow(WORKFLOW), assignments, RunContext(output_dir=str(tmp_path / "out")),
                         log=lambda line: None)
    assert any(path.endswith(".png") for path in saved)  # the loss curve
    path = f"{adapter}.safetensors"
    with safe_open(path, framework="pt") as handle:
        keys = set(handle.keys())
    assert keys and all(map(is_audio_key, keys))
    model = load_dit([weights.dit, path])  # strict: exactly the released audio key layout
    assert not model.fresh_audio_layers
