"""Tiny models as the pack's nodes hand them on, for sampler-node tests: a wav2vec2 folder through
MultiTalk wav2vec2 Loader, and a DiT whose audio layers take that wav2vec's features."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from comfyui_multitalk.models import load_dit
from comfyui_multitalk.models.dit.tiny import random_dit_state_dict, tiny_dit_config
from comfyui_multitalk.nodes.audio_nodes import MultiTalkWav2VecLoader
from comfyui_multitalk.nodes.model_nodes import MultiTalkModel


def tiny_wav2vec_node(folder: str):
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    torch.manual_seed(0)
    config = Wav2Vec2Config(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                            conv_dim=[16] * 7, conv_bias=False, feat_extract_norm="group", do_stable_layer_norm=False,
                            num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
    Wav2Vec2Model(config).save_pretrained(folder)
    return MultiTalkWav2VecLoader().load(folder)[0]


def tiny_model_node() -> MultiTalkModel:
    config = dataclasses.replace(tiny_dit_config(), audio_feature_dim=2 * 16)  # tiny wav2vec: 2 layers x 16
    dit = load_dit(random_dit_state_dict(config, seed=4), num_heads=2, text_len=16)
    return MultiTalkModel(dit, torch.device("cpu"), offload=True, name="tiny")


# Module-scoped fixtures for the sampler-node tests (import them into a test module by name).
@pytest.fixture(scope="module")
def wav2vec(tmp_path_factory):
    return tiny_wav2vec_node(str(tmp_path_factory.mktemp("wav2vec")))


@pytest.fixture(scope="module")
def model():
    return tiny_model_node()
