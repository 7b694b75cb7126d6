"""The LoRA, model-options and VAE-tiling nodes outside ComfyUI: LoRAs stack on the loader's model
(which never changes: a sampler with the unpatched model gives the unpatched video), options are
reported, and the sampler sizes its run for block swap."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from comfyui_multitalk.models.encoders.vae_tiling import Tiling
from comfyui_multitalk.nodes.lora_nodes import MultiTalkLoraLoader
from comfyui_multitalk.nodes.model_nodes import MultiTalkModel
from comfyui_multitalk.nodes.sampler_nodes import MultiTalkSampler
from comfyui_multitalk.nodes.speed_nodes import MultiTalkModelOptions, MultiTalkVAETiling

sys.path.insert(0, str(Path(__file__).parent))
from lora_helpers import expected_state, random_pairs, tiny_model, tiny_state, write_format  # noqa: E402
from test_sampler_node import SETTINGS, graph, model, wav2vec  # noqa: E402,F401  (fixtures reused)

OPTIONS = dict(block_swap="auto", blocks_to_swap=0, guidance_batch="auto", compile=False, fp8_matmul=False,
               attention="keep")


def _lora_file(tmp_path, state, name, seed, fmt="comfyui", alpha=2.0):
    pairs = random_pairs(state, seed=seed)
    path = tmp_path / name
    save_file(write_format(pairs, fmt, alpha), str(path))
    return str(path), pairs


def test_lora_nodes_stack_on_the_loader_model(tmp_path):
    state = tiny_state()
    loaded = MultiTalkModel(tiny_model(state), torch.device("cpu"), True, "tiny")
    first, first_pairs = _lora_file(tmp_path, state, "style.safetensors", seed=1)
    second, second_pairs = _lora_file(tmp_path, state, "lightx2v.safetensors", seed=2, fmt="kohya", alpha=4.0)
    out = MultiTalkLoraLoader().apply(loaded, first, 0.5, "merged")
    styled = out["result"][0]
    assert "LoRA 'style.safetensors' (strength 0.5): 6 weights patched." in out["ui"]["multitalk_notes"]
    both = MultiTalkLoraLoader().apply(styled, second, 1.0, "unmerged")["result"][0]
    assert both.base is loaded.model and len(both.loras) == 2
    expected = expected_state(expected_state(state, first_pairs, 0.5, 2.0), second_pairs, 1.0, 4.0)
    for key in ("blocks.0.self_attn.q.weight", "head.head.weight"):
        layer = both.model.get_submodule(key[: -len(".weight")])
        weight = layer.effective_weight() if hasattr(layer, "effective_weight") else layer.weight
        assert torch.allclose(weight, expected[key], atol=1e-6), key
    assert all(torch.equal(loaded.model.state_dict()[k], v) for k, v in state.items())  # the loader's model


def test_options_node_reports_and_keeps_the_loras(tmp_path):
    state = tiny_state()
    loaded = MultiTalkModel(tiny_model(state), torch.device("cpu"), True, "tiny")
    path, _ = _lora_file(tmp_path, state, "style.safetensors", seed=1)
    styled = MultiTalkLoraLoader().apply(loaded, path, 1.0, "unmerged")["result"][0]
    out = MultiTalkModelOptions().apply(styled, **{**OPTIONS, "block_swap": "manual", "blocks_to_swap": 1,
                                                   "guidance_batch": "sequential"})
    tuned = out["result"][0]
    notes = out["ui"]["multitalk_notes"]
    assert notes[0].startswith("LoRA 'style.safetensors'") and "guidance passes: sequential" in notes
    assert "block swap: 1 of 2 blocks streamed from CPU memory" in notes
    assert tuned.options.block_swap == 1 and tuned.loras == styled.loras
    assert type(tuned.model.blocks[0].self_attn.q).__name__ == "LoraLinear"  # the LoRA is still on
    dit = tuned.to_device(tokens=72, batch=2)
    assert dit is tuned.model and dit.block_runner is None  # a CPU run streams nothing
    assert styled.model.batch_policy == "auto"  # the input model keeps its own settings
    merged = MultiTalkLoraLoader().apply(loaded, path, 1.0, "merged")["result"][0]
    retuned = MultiTalkModelOptions().apply(merged, **OPTIONS)["result"][0]
    layer = retuned.model.blocks[0].self_attn.q
    assert layer.weight is merged.model.blocks[0].self_attn.q.weight  # no second merged copy
    assert layer.weight is not loaded.model.blocks[0].self_attn.q.weight
    with pytest.raises(ValueError, match="Block swap"):
        MultiTalkModelOptions().apply(styled, **{**OPTIONS, "block_swap": "manual", "blocks_to_swap": 3})


def test_vae_tiling_node_copies_the_vae(tiny_vae):
    tiled = MultiTalkVAETiling().apply(tiny_vae, "on", 128, 96)[0]
    assert tiled.tiling == Tiling(128, 64) and tiny_vae.tiling == "auto" and tiled.model is tiny_vae.model
    assert MultiTalkVAETiling().apply(tiny_vae, "off", 128, 32)[0].tiling is None
    other = object()
    assert MultiTalkVAETiling().apply(other, "on", 128, 32)["result"][0] is other


def test_unpatched_sampler_after_a_lora_sampler(model, tiny_vae, wav2vec, tmp_path):
    inputs, _ = graph(wav2vec, speakers=2)
    settings = {**SETTINGS, "steps": 1, "window_frames": 9, "motion_frames": 3, "max_frames": 9}
    state = {k: v for k, v in model.model.state_dict().items()}
    path, _ = _lora_file(tmp_path, state, "style.safetensors", seed=3, alpha=4.0)
    plain = MultiTalkSampler().sample(model, vae=tiny_vae, **inputs, **settings)["result"][0]
    patched = MultiTalkLoraLoader().apply(model, path, 1.0, "unmerged")["result"][0]
    styled = MultiTalkSampler().sample(patched, vae=tiny_vae, **inputs, **settings)["result"][0]
    assert (styled - plain).abs().max() > 1e-3
    again = MultiTalkSampler().sample(model, vae=tiny_vae, **inputs, **settings)["result"][0]
    assert torch.equal(again, plain)
