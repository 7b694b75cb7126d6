"""wav2vec2 loading (folder, single file, key styles) and official-equivalent features."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from comfyui_multitalk.models.audio import Wav2VecEncoder, encode_track, load_wav2vec
from comfyui_multitalk.models.audio.wav2vec_features import cnn_features, normalize_input
from comfyui_multitalk.models.audio.wav2vec_loader import infer_config, normalize_state_dict
from comfyui_multitalk.models.errors import AudioInputError, CheckpointError

TINY = {
    "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 1, "intermediate_size": 96,
    "conv_dim": [16] * 7, "conv_kernel": [10, 3, 3, 3, 3, 2, 2], "conv_stride": [5, 2, 2, 2, 2, 2, 2],
    "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 4,
}


def _tiny_model(**overrides):
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    torch.manual_seed(1)
    model = Wav2Vec2Model(Wav2Vec2Config(**{**TINY, **overrides}, mask_time_prob=0.0)).eval()
    with torch.no_grad():  # random norms so the chunked group norm is really exercised
        for name, p in model.named_parameters():
            if "layer_norm" in name:
                p.add_(torch.randn_like(p) * 0.3)
    return model


def _encoder_of(model):
    return Wav2VecEncoder(model=model, do_normalize=True, source="tiny")


def _golden(golden_dir):
    config = json.loads((golden_dir / "configs.json").read_text())["wav2vec_tiny"]
    case = load_file(str(golden_dir / "wav2vec_tiny_case.safetensors"))
    return config, case


def test_golden_single_file(golden_dir):
    """A single file has no preprocessor config: it computes what chinese-wav2vec2-base's folder
    computes (`do_normalize: false`), the official features without input normalisation."""
    _, case = _golden(golden_dir)
    encoder = load_wav2vec(str(golden_dir / "wav2vec_tiny_weights.safetensors"), num_attention_heads=2)
    assert encoder.model.config._attn_implementation == "sdpa"
    features = encode_track(encoder, case["speech"].numpy(), int(len(case["speech"]) / 16000 * 25))
    assert features.shape == case["embedding_raw"].shape == (32, 3, 32)
    assert (features - case["embedding_raw"]).abs().max().item() <= 2e-5


@pytest.mark.parametrize("preprocessor", [{"do_normalize": False, "sampling_rate": 16000}, None],
                         ids=["released_config", "no_preprocessor_config"])
def test_golden_folder_without_normalisation(golden_dir, tmp_path, preprocessor):
    """chinese-wav2vec2-base's folder says do_normalize false; a folder without the file behaves the same."""
    config, case = _golden(golden_dir)
    folder = tmp_path / "chinese-wav2vec2-base"
    folder.mkdir()
    save_file(load_file(str(golden_dir / "wav2vec_tiny_weights.safetensors")), str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "wav2vec2"}))
    if preprocessor is not None:
        (folder / "preprocessor_config.json").write_text(json.dumps(preprocessor))
    features = encode_track(load_wav2vec(str(folder)), case["speech"].numpy(), 32)
    assert (features - case["embedding_raw"]).abs().max().item() <= 2e-5


def test_golden_hf_folder_old_key_style(golden_dir, tmp_path):
    """Folder with config.json + preprocessor config, weights in the 2021 layout
    ('wav2vec2.' prefix, weight_g/weight_v, extra pre-training heads)."""
    config, case = _golden(golden_dir)
    state = load_file(str(golden_dir / "wav2vec_tiny_weights.safetensors"))
    old = {}
    for key, value in state.items():
        key = key.replace("parametrizations.weight.original0", "weight_g")
        key = key.replace("parametrizations.weight.original1", "weight_v")
        old["wav2vec2." + key] = value
    old["quantizer.codevectors"] = torch.zeros(1, 4, 8)
    old["wav2vec2.masked_spec_embed"] = torch.zeros(32)
    folder = tmp_path / "w2v"
    folder.mkdir()
    torch.save(old, folder / "pytorch_model.bin")
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "wav2vec2"}))
    (folder / "preprocessor_config.json").write_text(json.dumps({"do_normalize": True, "sampling_rate": 16000}))
    encoder = load_wav2vec(str(folder))
    assert encoder.model.config.num_attention_heads == 2
    features = encode_track(encoder, case["speech"].numpy(), 32)
    assert (features - case["embedding"]).abs().max().item() <= 2e-5


def test_sdpa_equals_eager_and_chunked_equals_whole():
    model = _tiny_model()
    rng = np.random.default_rng(0)
    n = 16000 * 3 + 77
    speech = (rng.standard_normal(n) * np.sin(np.linspace(0, 40, n))).astype(np.float32)
    sdpa = _encoder_of(model)
    official = encode_track(sdpa, speech, 75, chunk_frames=None)
    model.set_attn_implementation("eager")
    eager = encode_track(sdpa, speech, 75, chunk_frames=None)
    model.set_attn_implementation("sdpa")
    chunked = encode_track(sdpa, speech, 75, chunk_frames=13)  # many chunk borders
    assert official.shape == (75, 2, 64)
    assert (official - eager).abs().max().item() < 2e-5
    assert (chunked - eager).abs().max().item() < 2e-5


def test_chunked_cnn_layer_norm_variant():
    model = _tiny_model(feat_extract_norm="layer", conv_bias=True)
    speech = torch.from_numpy(normalize_input(np.random.default_rng(1).standard_normal(9000)))[None]
    whole = cnn_features(model, speech, None)
    chunked = cnn_features(model, speech, 5)
    assert whole.shape == chunked.shape == (1, 16, 27)  # (9000 - 400) // 320 + 1
    assert (whole - chunked).abs().max().item() < 1e-5


def test_infer_config_real_base_shape():
    """Config read off a state dict of the real chinese-wav2vec2-base shape (meta tensors)."""
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    with torch.device("meta"):
        base = Wav2Vec2Model(Wav2Vec2Config(mask_time_prob=0.0))
    state = {"wav2vec2." + k: v for k, v in base.state_dict().items()}
    fields = infer_config(normalize_state_dict(state, "base"))
    assert fields["num_hidden_layers"] == 12 and fields["hidden_size"] == 768
    assert fields["intermediate_size"] == 3072 and fields["conv_dim"] == [512] * 7
    assert fields["conv_kernel"] == [10, 3, 3, 3, 3, 2, 2] and fields["conv_stride"] == [5, 2, 2, 2, 2, 2, 2]
    assert fields["feat_extract_norm"] == "group" and fields["conv_bias"] is False
    assert fields["do_stable_layer_norm"] is False
    assert fields["num_conv_pos_embeddings"] == 128 and fields["num_conv_pos_embedding_groups"] == 16


def test_single_file_fp16_folded_weight_norm(tmp_path):
    model = _tiny_model()
    state = {k: v.half() for k, v in model.state_dict().items()}
    g = state.pop("encoder.pos_conv_embed.conv.parametrizations.weight.original0")
    v = state.pop("encoder.pos_conv_embed.conv.parametrizations.weight.original1")
    folded = v.float() * g.float() / v.float().norm(dim=(0, 1), keepdim=True)  # what weight norm computes
    state["encoder.pos_conv_embed.conv.weight"] = folded.half()
    path = tmp_path / "w2v_fp16.safetensors"
    save_file(state, str(path))
    encoder = load_wav2vec(str(path))
    assert encoder.model.config.num_attention_heads == 1 and encoder.dtype == torch.float32
    speech = np.random.default_rng(2).standard_normal(8000).astype(np.float32)
    reference = _encoder_of(model)
    got, want = encode_track(encoder, speech, 12), encode_track(reference, speech, 12)
    assert (got - want).abs().max().item() < 0.05  # fp16-rounded weights


def test_not_a_wav2vec_file(tmp_path):
    path = tmp_path / "clip_vision.safetensors"
    save_file({"vision_model.embeddings.class_embedding": torch.zeros(8)}, str(path))
    with pytest.raises(CheckpointError, match="not a wav2vec2 checkpoint.*vision_model"):
        load_wav2vec(str(path))
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 30)
    with pytest.raises(CheckpointError, match="junk.safetensors"):
        load_wav2vec(str(junk))
    with pytest.raises(CheckpointError, match="does not exist"):
        load_wav2vec(str(tmp_path / "missing"))


def test_too_short_audio_is_named():
    encoder = _encoder_of(_tiny_model())
    with pytest.raises(AudioInputError, match="300 samples"):
        encode_track(encoder, np.zeros(300, np.float32), 1)
