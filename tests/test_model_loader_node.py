"""MultiTalk Model Loader outside ComfyUI: plain paths, the audio overlay, dtype and errors."""
from __future__ import annotations

import pytest
import torch

from comfyui_multitalk.models.weights import Fp8Linear
from comfyui_multitalk.models.dit.tiny import save_tiny_dit
from comfyui_multitalk.models.errors import CheckpointError
from comfyui_multitalk.nodes.model_nodes import MultiTalkModelLoader

DEFAULTS = dict(dtype="auto", attention="auto", device="cpu", offload=True)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return save_tiny_dit(str(tmp_path_factory.mktemp("dit")))


def test_base_plus_audio_file(files):
    base, audio = files
    loaded = MultiTalkModelLoader().load(base, audio, **DEFAULTS)[0]
    assert loaded.model.config.num_heads == 2 and loaded.model.config.text_len == 16  # from the file metadata
    assert not loaded.model.fresh_audio_layers and loaded.device == torch.device("cpu")


def test_fp8_choice_keeps_blocks_in_fp8(files):
    loaded = MultiTalkModelLoader().load(*files, **{**DEFAULTS, "dtype": "fp8_e4m3fn"})[0]
    assert isinstance(loaded.model.blocks[0].ffn[0], Fp8Linear)


def test_base_alone_needs_the_training_opt_in(files):
    base, _ = files
    with pytest.raises(CheckpointError, match="no MultiTalk audio layers"):
        MultiTalkModelLoader().load(base, "none", **DEFAULTS)
    loaded = MultiTalkModelLoader().load(base, "", **DEFAULTS, fresh_audio_layers=True)[0]
    assert loaded.model.fresh_audio_layers


def test_missing_file_is_named(tmp_path):
    with pytest.raises(CheckpointError, match="nowhere.safetensors"):
        MultiTalkModelLoader().load(str(tmp_path / "nowhere.safetensors"), "none", **DEFAULTS)
