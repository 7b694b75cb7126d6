"""Every loader of the pack reads through the one weight reader: ComfyUI's quantised layouts in
the DiT, 16-bit audio layers over an fp8 base, non-persistent buffers in the encoders, and clear
errors for folders, stripped scales and optimum-quanto files. User files are never changed."""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from comfyui_multitalk.models import load_dit
from comfyui_multitalk.models.audio import load_wav2vec
from comfyui_multitalk.models.dit.keys import is_audio_key
from comfyui_multitalk.models.encoders import load_clip_vision, load_text_encoder, load_vae, tiny
from comfyui_multitalk.models.errors import CheckpointError, EncoderInputError
from comfyui_multitalk.models.weights import Fp8Linear

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dit_fixtures import HEADS, inputs, run, weights  # noqa: E402,F401  (module fixtures)

FP8 = torch.float8_e4m3fn


def digest(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _is_linear_weight(key, value) -> bool:
    return key.startswith("blocks.") and key.endswith(".weight") and value.dim() == 2


def fp8_layout(weights, layout: str, keys=None):
    """(file tensors, bf16 dequantised reference) with block linears in fp8 in ComfyUI's layout."""
    sd, reference = {}, {}
    for key, value in weights.items():
        if keys is not None and key not in keys:
            continue
        if not _is_linear_weight(key, value):
            sd[key] = reference[key] = value.to(torch.bfloat16)
            continue
        layer, scale = key[:-len(".weight")], (value.abs().max() / 448.0).reshape(())
        sd[key] = (value / scale).to(FP8)
        reference[key] = (sd[key].float() * scale).to(torch.bfloat16)
        if layout == "comfy_quant":
            sd[f"{layer}.weight_scale"], sd[f"{layer}.input_scale"] = scale, torch.tensor(1.0)
            sd[f"{layer}.comfy_quant"] = torch.tensor(list(json.dumps({"format": "float8_e4m3fn"}).encode()),
                                                      dtype=torch.uint8)
        else:
            sd[f"{layer}.scale_weight"], sd[f"{layer}.scale_input"] = scale, torch.tensor(1.0)
    if layout == "scaled_fp8":
        sd["scaled_fp8"] = torch.empty(0, dtype=FP8)
    return sd, reference


# --- DiT --------------------------------------------------------------------------------------


def test_dit_from_comfyui_comfy_quant_checkpoint(weights, inputs, tmp_path):
    sd, reference = fp8_layout(weights, "comfy_quant")
    path = tmp_path / "wan_i2v_fp8_saved_by_comfyui.safetensors"
    save_file({"model.diffusion_model." + k: v for k, v in sd.items()}, path)
    before = digest(path)
    model = load_dit(path, **HEADS)
    assert isinstance(model.blocks[0].ffn[0], Fp8Linear) and model.blocks[0].ffn[0].weight.dtype == FP8
    assert torch.equal(run(model, inputs), run(load_dit(reference, **HEADS), inputs))
    assert digest(path) == before


def test_16_bit_audio_layers_over_an_fp8_base_keep_their_precision(weights, inputs, tmp_path):
    base_keys = {k for k in weights if not is_audio_key(k)}
    base, base_reference = fp8_layout(weights, "scaled_fp8", keys=base_keys)
    audio = {k: v.to(torch.bfloat16) for k, v in weights.items() if is_audio_key(k)}
    save_file(base, tmp_path / "wan2.1_i2v_480p_14B_fp8_scaled.safetensors")
    save_file(audio, tmp_path / "multitalk.safetensors")
    files = [tmp_path / "wan2.1_i2v_480p_14B_fp8_scaled.safetensors", tmp_path / "multitalk.safetensors"]
    before = [digest(f) for f in files]
    model = load_dit(files, **HEADS)
    q = model.blocks[1].audio_cross_attn.q_linear
    assert type(q) is nn.Linear and torch.equal(q.weight, audio["blocks.1.audio_cross_attn.q_linear.weight"])
    assert isinstance(model.blocks[1].self_attn.q, Fp8Linear)
    expected = run(load_dit({**base_reference, **audio}, **HEADS), inputs)
    assert torch.equal(run(model, inputs), expected)
    opted = load_dit(files, fp8_audio_layers=True, **HEADS)
    assert isinstance(opted.blocks[1].audio_cross_attn.q_linear, Fp8Linear)
    assert [digest(f) for f in files] == before


def test_dit_scaled_file_with_stripped_scales(weights, tmp_path):
    sd, _ = fp8_layout(weights, "scaled_fp8")
    del sd["blocks.1.ffn.0.scale_weight"], sd["blocks.0.self_attn.o.scale_weight"]
    save_file(sd, tmp_path / "wan_fp8_scaled.safetensors")
    with pytest.raises(CheckpointError, match=r"wan_fp8_scaled.safetensors.*2 \('blocks.0.self_attn.o.weight', "
                                              r"'blocks.1.ffn.0.weight'\) fp8 weights have no scale"):
        load_dit(tmp_path / "wan_fp8_scaled.safetensors", **HEADS)


def test_dit_optimum_quanto_file(weights, tmp_path):
    sd = {}
    for key, value in weights.items():
        if _is_linear_weight(key, value):
            scale = value.abs().amax(1, keepdim=True) / 127
            sd[key + "._data"], sd[key + "._scale"] = (value / scale).round().to(torch.int8), scale
            sd[key[:-len("weight")] + "input_scale"] = torch.ones(())
        else:
            sd[key] = value
    save_file(sd, tmp_path / "dit_model_int8.safetensors")
    with pytest.raises(CheckpointError, match="dit_model_int8.safetensors.*optimum-quanto.*original bf16 files"):
        load_dit(tmp_path / "dit_model_int8.safetensors", **HEADS)


def test_folder_of_unrelated_models_given_as_the_dit(tmp_path):
    save_file(tiny.to_original_vae_layout(tiny.tiny_vae_state(base_dim=8)), tmp_path / "wan_2.1_vae.safetensors")
    save_file(tiny.tiny_text_encoder_state(), tmp_path / "umt5_xxl_bf16.safetensors")
    with pytest.raises(CheckpointError, match=r"folder .* several unrelated weight files: 'umt5_xxl_bf16.safetensors' "
                                              r"\(a T5.*\); 'wan_2.1_vae.safetensors' \(the Wan2.1 VAE\)"):
        load_dit(tmp_path, **HEADS)


def test_legacy_pth_base_model(weights, inputs, tmp_path):
    torch.save(weights, tmp_path / "wan_i2v.pth", _use_new_zipfile_serialization=False)
    expected = run(load_dit(weights, **HEADS), inputs)
    assert torch.equal(run(load_dit(tmp_path / "wan_i2v.pth", **HEADS), inputs), expected)


# --- encoders ---------------------------------------------------------------------------------


@pytest.mark.parametrize("loader", [load_text_encoder, load_clip_vision, load_vae])
def test_encoder_loaders_refuse_a_folder(loader, tmp_path):
    save_file({"a": torch.zeros(1)}, tmp_path / "model.safetensors")
    with pytest.raises(EncoderInputError, match="is a folder.*weights file is expected.*model.safetensors"):
        loader(str(tmp_path))


def test_clip_vision_file_with_position_ids(tmp_path):
    state = tiny.tiny_clip_state()  # 28 px / patch 14: 1 + 4 tokens
    save_file(state, tmp_path / "clip_vision_plain.safetensors")
    # as in ComfyUI's clip_vision_h.safetensors, and with wrong values to prove they are not used
    save_file({**state, "vision_model.embeddings.position_ids": torch.full((1, 5), 3)},
              tmp_path / "clip_vision_h.safetensors")
    before = digest(tmp_path / "clip_vision_h.safetensors")
    clip = load_clip_vision(str(tmp_path / "clip_vision_h.safetensors"), num_heads=4)
    ids = dict(clip.model.named_buffers())
    ids = next(v for k, v in ids.items() if k.endswith("position_ids"))
    assert not ids.is_meta and torch.equal(ids, torch.arange(5)[None])
    image = torch.rand(1, 28, 28, 3)
    plain = load_clip_vision(str(tmp_path / "clip_vision_plain.safetensors"), num_heads=4)
    assert torch.equal(clip.encode_image(image).penultimate_hidden_states,
                       plain.encode_image(image).penultimate_hidden_states)
    assert digest(tmp_path / "clip_vision_h.safetensors") == before


def _t5_file(path):
    state = {k: v.to(torch.bfloat16) for k, v in tiny.tiny_text_encoder_state().items()}
    state["spiece_model"] = torch.frombuffer(bytearray(tiny.tiny_sentencepiece()), dtype=torch.uint8)
    state["encoder.block.0.layer.0.SelfAttention.extra_table"] = torch.zeros(4)
    save_file(state, path)
    return lambda m: m.encoder.block[0].layer[0].SelfAttention


def _vae_file(path):
    save_file({**tiny.tiny_vae_state(base_dim=8), "extra_table": torch.zeros(4)}, path)
    return lambda m: m


def _wav2vec_file(path):
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    config = Wav2Vec2Config(hidden_size=64, num_hidden_layers=1, num_attention_heads=1, intermediate_size=48,
                            conv_dim=[16] * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)
    save_file({**Wav2Vec2Model(config).state_dict(), "encoder.extra_table": torch.zeros(4)}, path)
    return lambda m: m.encoder


def _patched(monkeypatch, cls):
    """`cls` as a library version that computes a non-persistent buffer in its constructor."""
    init = cls.__init__

    def with_table(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.register_buffer("extra_table", torch.arange(4.0) * 2, persistent=False)

    monkeypatch.setattr(cls, "__init__", with_table)


@pytest.mark.parametrize("name", ["text_encoder", "vae", "wav2vec"])
def test_non_persistent_buffers_in_files_are_dropped_and_computed(name, tmp_path, monkeypatch):
    from diffusers import AutoencoderKLWan
    from transformers.models.umt5.modeling_umt5 import UMT5Attention
    from transformers.models.wav2vec2.modeling_wav2vec2 import Wav2Vec2Encoder

    cls, write, load = {
        "text_encoder": (UMT5Attention, _t5_file, lambda p: load_text_encoder(p, dtype=torch.float32).model),
        "vae": (AutoencoderKLWan, _vae_file, lambda p: load_vae(p).model),
        "wav2vec": (Wav2Vec2Encoder, _wav2vec_file, lambda p: load_wav2vec(p).model),
    }[name]
    path = tmp_path / f"{name}.safetensors"
    owner = write(path)
    before = digest(path)
    _patched(monkeypatch, cls)
    table = owner(load(str(path))).extra_table
    assert not table.is_meta and torch.equal(table, torch.arange(4.0) * 2)  # computed, not the file's zeros
    assert digest(path) == before


def test_text_encoder_with_stripped_scales(tmp_path):
    state = {k: v.to(torch.bfloat16) for k, v in tiny.tiny_text_encoder_state().items()}
    key = "encoder.block.0.layer.1.DenseReluDense.wi_0.weight"
    scale = state[key].float().abs().max() / 448
    state[key] = (state[key].float() / scale).to(FP8)
    state["scaled_fp8"] = torch.empty(0, dtype=FP8)
    save_file(state, tmp_path / "umt5_xxl_fp8_e4m3fn_scaled.safetensors")
    with pytest.raises(EncoderInputError, match=f"umt5_xxl_fp8_e4m3fn_scaled.safetensors.*'{key}'.*no scale"):
        load_text_encoder(str(tmp_path / "umt5_xxl_fp8_e4m3fn_scaled.safetensors"))
