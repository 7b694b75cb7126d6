"""umt5 text encoder: both file layouts, embedded/folder tokenizers, fp8, CONDITIONING, errors."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from comfyui_multitalk.models.encoders import DEFAULT_NEGATIVE_PROMPT, MAX_TOKENS, load_text_encoder, tiny
from comfyui_multitalk.models.encoders.tokenizer import PromptTokenizer, clean_prompt
from comfyui_multitalk.models.errors import EncoderInputError
from comfyui_multitalk.nodes.encoder_nodes import MultiTalkTextEncode, MultiTalkTextEncoderLoader

PROMPT = "Two people talk in a bright kitchen, one laughs."


def _tokenizer_json(proto: bytes, path) -> None:
    """A tokenizer.json equivalent to the sentencepiece model, built offline with `tokenizers`."""
    from sentencepiece import sentencepiece_model_pb2
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    spec = sentencepiece_model_pb2.ModelProto()
    spec.ParseFromString(proto)
    tok = Tokenizer(models.Unigram([(p.piece, p.score) for p in spec.pieces], unk_id=2))
    tok.normalizer = normalizers.Precompiled(spec.normalizer_spec.precompiled_charsmap)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    tok.save(str(path))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("t5")
    proto = tiny.tiny_sentencepiece()
    state = tiny.tiny_text_encoder_state()
    comfy = {k: v.to(torch.bfloat16) for k, v in state.items()}
    comfy["spiece_model"] = torch.frombuffer(bytearray(proto), dtype=torch.uint8)
    save_file(comfy, root / "umt5_tiny_bf16.safetensors")
    release = root / "release"
    (release / "google" / "umt5-xxl").mkdir(parents=True)
    (release / "google" / "umt5-xxl" / "spiece.model").write_bytes(proto)
    torch.save({k: v.to(torch.bfloat16) for k, v in tiny.to_wan_t5_layout(state).items()},
               release / "models_t5_umt5-xxl-enc-bf16.pth")
    _tokenizer_json(proto, root / "tokenizer.json")
    return {"root": root, "proto": proto, "state": state, "comfy": root / "umt5_tiny_bf16.safetensors",
            "wan": release / "models_t5_umt5-xxl-enc-bf16.pth", "json": root / "tokenizer.json"}


def test_both_layouts_give_the_same_conditioning(files):
    comfy = load_text_encoder(str(files["comfy"]), dtype=torch.float32)  # tokenizer embedded in the file
    wan = load_text_encoder(str(files["wan"]), dtype=torch.float32)  # tokenizer folder beside the .pth
    a, b = comfy.encode(PROMPT), wan.encode(PROMPT)
    n_tokens = len(comfy.tokenizer.ids(PROMPT))
    assert a.shape == (1, n_tokens, 32) and a.dtype == torch.float32
    assert comfy.tokenizer.ids(PROMPT)[-1] == 1  # the end token is kept, as the official pipeline does
    assert torch.equal(a, b)
    assert a.abs().sum() > 0


def test_config_is_read_from_the_weights(files):
    config = load_text_encoder(str(files["comfy"])).model.config
    assert (config.d_model, config.num_layers, config.num_heads, config.d_ff, config.vocab_size) == (32, 2, 4, 48, 128)
    assert config.d_kv == 8 and config.is_gated_act


def test_reference_encoding_matches_plain_umt5(files):
    """Our loader is a thin layer over UMT5EncoderModel: same weights, same numbers."""
    from transformers import UMT5EncoderModel

    ours = load_text_encoder(str(files["comfy"]), dtype=torch.float32)
    ref = UMT5EncoderModel(ours.model.config).eval()
    ref.load_state_dict({**files["state"], "encoder.embed_tokens.weight": files["state"]["shared.weight"]})
    ref.load_state_dict({k: v.to(torch.bfloat16).float() for k, v in ref.state_dict().items()})
    ids = torch.tensor([ours.tokenizer.ids(PROMPT)])
    expected = ref(input_ids=ids).last_hidden_state
    assert torch.allclose(ours.encode(PROMPT), expected, atol=1e-5)


def test_valid_tokens_equal_the_official_padded_pass(files):
    """Encoding only the valid tokens equals padding to the maximum length with a mask."""
    enc = load_text_encoder(str(files["comfy"]), dtype=torch.float32)
    ids = enc.tokenizer.ids(PROMPT)
    padded = torch.zeros(1, 64, dtype=torch.long)
    padded[0, :len(ids)] = torch.tensor(ids)
    mask = (torch.arange(64) < len(ids)).long()[None]
    full = enc.model(input_ids=padded, attention_mask=mask).last_hidden_state[:, :len(ids)]
    assert torch.allclose(enc.encode(PROMPT), full, atol=1e-5)


def test_tokenizer_sources_agree(files):
    embedded = PromptTokenizer.from_sentencepiece(files["proto"], "test")
    from_json = PromptTokenizer.from_path(str(files["json"]))
    for text in tiny.TINY_CORPUS + ("  Hello   world &amp; two\nspeakers!  ",):
        assert embedded.ids(text) == from_json.ids(text)
    assert clean_prompt("  a &amp;amp;  b\n c ") == "a & b c"


def test_long_prompts_are_truncated_to_512_with_the_end_token(files):
    tok = PromptTokenizer.from_sentencepiece(files["proto"], "test")
    ids = tok.ids(" ".join([PROMPT] * 200))
    assert len(ids) == MAX_TOKENS and ids[-1] == 1


def test_scaled_fp8_file_is_dequantised(files, tmp_path):
    if not hasattr(torch, "float8_e4m3fn"):
        pytest.skip("this torch has no float8")
    state, fp8 = files["state"], {}
    for key, value in state.items():
        if key.endswith(".weight") and value.ndim == 2 and "DenseReluDense" in key:
            scale = value.abs().max() / 448.0
            fp8[key] = (value / scale).to(torch.float8_e4m3fn)
            fp8[key[:-len("weight")] + "scale_weight"] = scale.reshape(())
        else:
            fp8[key] = value.to(torch.bfloat16)
    fp8["scaled_fp8"] = torch.empty(0, dtype=torch.float8_e4m3fn)
    fp8["spiece_model"] = torch.frombuffer(bytearray(files["proto"]), dtype=torch.uint8)
    save_file(fp8, tmp_path / "umt5_fp8_scaled.safetensors")
    enc = load_text_encoder(str(tmp_path / "umt5_fp8_scaled.safetensors"), dtype=torch.float32)
    key = "encoder.block.0.layer.1.DenseReluDense.wi_0.weight"
    loaded = enc.model.state_dict()[key]
    expected = fp8[key].float() * fp8[key[:-len("weight")] + "scale_weight"]
    assert torch.equal(loaded, expected)
    reference = load_text_encoder(str(files["comfy"]), dtype=torch.float32).encode(PROMPT)
    assert (enc.encode(PROMPT) - reference).abs().max() < 0.1 * reference.abs().max()


def test_wrong_files_are_named(files, tmp_path):
    clip_l = tmp_path / "clip_l.safetensors"
    save_file({"text_model.encoder.layers.0.mlp.fc1.weight": torch.zeros(4, 2)}, clip_l)
    with pytest.raises(EncoderInputError, match="CLIP text encoder.*umt5-xxl"):
        load_text_encoder(str(clip_l))
    lonely = tmp_path / "models_t5.pth"
    torch.save(tiny.to_wan_t5_layout(files["state"]), lonely)
    with pytest.raises(EncoderInputError, match="no tokenizer"):
        load_text_encoder(str(lonely))
    with pytest.raises(EncoderInputError, match="does not exist"):
        load_text_encoder(str(tmp_path / "missing.safetensors"))


def test_nodes_produce_conditioning(files):
    (t5,) = MultiTalkTextEncoderLoader().load(str(files["comfy"]), "", "cpu", "fp32")
    positive, negative = MultiTalkTextEncode().encode(t5, PROMPT, "   ")
    assert isinstance(positive, list) and isinstance(positive[0][1], dict)
    assert positive[0][0].shape == (1, len(t5.tokenizer.ids(PROMPT)), 32)
    assert torch.equal(negative[0][0], t5.encode(DEFAULT_NEGATIVE_PROMPT))  # empty negative = official one
    inputs = MultiTalkTextEncoderLoader.INPUT_TYPES()["required"]
    assert all("tooltip" in spec[1] for spec in inputs.values())
    assert MultiTalkTextEncode.INPUT_TYPES()["required"]["negative"][1]["default"] == DEFAULT_NEGATIVE_PROMPT
