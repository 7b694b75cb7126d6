"""umt5 text encoder against the official Wan T5 (golden numbers), in every file layout.

The golden weights are in the official key layout (models_t5_umt5-xxl-enc-bf16.pth names).
ComfyUI's files (umt5_xxl_fp16 / umt5_xxl_fp8_e4m3fn_scaled) are made from them here with a
mapping written from the facts in DESIGN.md §7, never from the pack's own tables.
"""
from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from comfyui_multitalk.models.encoders import DEFAULT_NEGATIVE_PROMPT, MAX_TOKENS, load_text_encoder
from comfyui_multitalk.models.encoders.tokenizer import PromptTokenizer, clean_prompt
from comfyui_multitalk.models.errors import EncoderInputError
from comfyui_multitalk.nodes.encoder_nodes import MultiTalkTextEncode, MultiTalkTextEncoderLoader

TOL = 2e-5  # the golden README's pass mark
PROMPTS = ("short", "long")
# DESIGN.md §7: original Wan block names -> Hugging Face UMT5 names (ComfyUI's umt5_xxl files).
HF_BLOCK = {
    "attn.q.weight": "layer.0.SelfAttention.q.weight",
    "attn.k.weight": "layer.0.SelfAttention.k.weight",
    "attn.v.weight": "layer.0.SelfAttention.v.weight",
    "attn.o.weight": "layer.0.SelfAttention.o.weight",
    "pos_embedding.embedding.weight": "layer.0.SelfAttention.relative_attention_bias.weight",
    "norm1.weight": "layer.0.layer_norm.weight",
    "norm2.weight": "layer.1.layer_norm.weight",
    "ffn.gate.0.weight": "layer.1.DenseReluDense.wi_0.weight",
    "ffn.fc1.weight": "layer.1.DenseReluDense.wi_1.weight",
    "ffn.fc2.weight": "layer.1.DenseReluDense.wo.weight",
}
# The Linear layers, which ComfyUI's scaled-fp8 file stores in float8_e4m3fn (7 per block).
LINEARS = ("attn.q.weight", "attn.k.weight", "attn.v.weight", "attn.o.weight",
           "ffn.gate.0.weight", "ffn.fc1.weight", "ffn.fc2.weight")


def comfy_name(key: str) -> str:
    if key == "token_embedding.weight":
        return "shared.weight"
    if key == "norm.weight":
        return "encoder.final_layer_norm.weight"
    _, layer, rest = key.split(".", 2)  # blocks.{i}.<rest>
    return f"encoder.block.{layer}.{HF_BLOCK[rest]}"


def golden_spiece(tokenizer_json) -> bytes:
    """A sentencepiece model with the golden word-level vocabulary: one piece per word, same ids.

    ComfyUI's umt5 files embed their sentencepiece model as a uint8 tensor `spiece_model`.
    """
    from sentencepiece import sentencepiece_model_pb2 as pb

    vocab = json.loads(tokenizer_json.read_text())["model"]["vocab"]
    special = {"<pad>": pb.ModelProto.SentencePiece.CONTROL, "</s>": pb.ModelProto.SentencePiece.CONTROL,
               "<unk>": pb.ModelProto.SentencePiece.UNKNOWN}
    proto = pb.ModelProto()
    proto.trainer_spec.model_type = pb.TrainerSpec.UNIGRAM
    proto.trainer_spec.vocab_size = len(vocab)
    proto.trainer_spec.pad_id, proto.trainer_spec.eos_id, proto.trainer_spec.unk_id = 0, 1, 2
    proto.trainer_spec.bos_id = -1
    proto.normalizer_spec.name = "identity"
    for word, _ in sorted(vocab.items(), key=lambda item: item[1]):
        piece = proto.pieces.add()
        piece.piece = word if word in special else "\u2581" + word
        piece.type = special.get(word, pb.ModelProto.SentencePiece.NORMAL)
        piece.score = 0.0 if word in special else -1.0
    return proto.SerializeToString()


@pytest.fixture(scope="module")
def golden(golden_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("t5")
    weights = load_file(str(golden_dir / "t5_tiny_weights.safetensors"))  # fp16, official names
    comfy = {comfy_name(k): v for k, v in weights.items()}
    spiece = golden_spiece(golden_dir / "t5_tiny_tokenizer.json")
    comfy["spiece_model"] = torch.frombuffer(bytearray(spiece), dtype=torch.uint8)
    save_file(comfy, root / "umt5_xxl_fp16.safetensors")
    return {
        "root": root, "weights": weights, "comfy_state": comfy, "spiece": spiece,
        "file": str(golden_dir / "t5_tiny_weights.safetensors"),
        "tokenizer": golden_dir / "t5_tiny_tokenizer.json",
        "comfy": str(root / "umt5_xxl_fp16.safetensors"),
        "prompts": json.loads((golden_dir / "configs.json").read_text())["t5_tiny"]["prompts"],
        "case": load_file(str(golden_dir / "t5_tiny_case.safetensors")),
    }


@pytest.fixture(scope="module")
def encoder(golden):
    return load_text_encoder(golden["file"], str(golden["tokenizer"]), dtype=torch.float32)


def valid_ids(golden, name: str) -> list[int]:
    case = golden["case"]
    return case[f"{name}.ids"][0][case[f"{name}.mask"][0].bool()].tolist()


def assert_matches(out: torch.Tensor, expected: torch.Tensor, tol: float = TOL) -> None:
    assert out.shape == expected.shape
    diff = (out - expected).abs().max().item()
    assert diff <= tol, f"max abs difference {diff:.3g} > {tol:.3g}"


@pytest.mark.parametrize("name", PROMPTS)
def test_prompts_clean_and_tokenise_to_the_official_ids(golden, name, tmp_path):
    """Cleaning (ftfy, HTML unescape, whitespace) + the end token give the official ids."""
    folder = tmp_path / "umt5-xxl"
    folder.mkdir()
    shutil.copy(golden["tokenizer"], folder / "tokenizer.json")
    prompt = golden["prompts"][name]
    expected = valid_ids(golden, name)
    for source in (golden["tokenizer"], folder):  # the file, or a folder holding it
        assert PromptTokenizer.from_path(str(source)).ids(prompt) == expected
    assert PromptTokenizer.from_sentencepiece(golden["spiece"], "embedded").ids(prompt) == expected
    padded = expected + [0] * (golden["case"][f"{name}.ids"].shape[1] - len(expected))  # pad id 0
    assert padded == golden["case"][f"{name}.ids"][0].tolist() and expected[-1] == 1


@pytest.mark.parametrize("name", PROMPTS)
def test_original_layout_matches_the_official_encoder(golden, encoder, name):
    out = encoder.encode(golden["prompts"][name])  # [1, valid tokens, 16]
    assert out.dtype == torch.float32
    assert_matches(out[0], golden["case"][f"{name}.output"])


def test_the_official_padded_pass_gives_the_same_valid_rows(golden, encoder):
    """The official pads to 512 with a mask and keeps the valid rows: the model agrees."""
    case = golden["case"]
    with torch.no_grad():
        hidden = encoder.model(input_ids=case["long.ids"], attention_mask=case["long.mask"]).last_hidden_state
    assert_matches(hidden[0, : int(case["long.mask"].sum())], case["long.output"])


def test_release_folder_layout(golden, tmp_path):
    """models_t5_umt5-xxl-enc-bf16.pth with google/umt5-xxl/ beside it, as the Wan release ships."""
    (tmp_path / "google" / "umt5-xxl").mkdir(parents=True)
    shutil.copy(golden["tokenizer"], tmp_path / "google" / "umt5-xxl" / "tokenizer.json")
    torch.save(golden["weights"], tmp_path / "models_t5_umt5-xxl-enc-bf16.pth")
    enc = load_text_encoder(str(tmp_path / "models_t5_umt5-xxl-enc-bf16.pth"), dtype=torch.float32)
    for name in PROMPTS:
        assert_matches(enc.encode(golden["prompts"][name])[0], golden["case"][f"{name}.output"])


@pytest.mark.parametrize("embeddings", [("shared",), ("shared", "embed_tokens"), ("embed_tokens",)])
def test_comfyui_fp16_file_matches_the_official_encoder(golden, embeddings, tmp_path):
    """ComfyUI's umt5_xxl_fp16 holds `shared.weight` and the tokenizer; HF exports may hold either name."""
    state = dict(golden["comfy_state"])
    table = state.pop("shared.weight")
    names = {"shared": "shared.weight", "embed_tokens": "encoder.embed_tokens.weight"}
    state.update({names[e]: table.clone() for e in embeddings})
    save_file(state, tmp_path / "umt5.safetensors")
    enc = load_text_encoder(str(tmp_path / "umt5.safetensors"), dtype=torch.float32)  # embedded tokenizer
    for name in PROMPTS:
        assert enc.tokenizer.ids(golden["prompts"][name]) == valid_ids(golden, name)
        assert_matches(enc.encode(golden["prompts"][name])[0], golden["case"][f"{name}.output"])


def test_comfyui_scaled_fp8_file_equals_fp32_on_the_rounded_weights(golden, tmp_path):
    """umt5_xxl_fp8_e4m3fn_scaled: Linear weights fp8 with a float32 `scale_weight`, rest fp16.

    The reference is the golden-proven original-layout path fed the fp8-rounded weights.
    """
    fp8, rounded, scales = {}, {}, {}
    for key, value in golden["weights"].items():
        if key.split(".", 2)[-1] in LINEARS:
            scale = value.float().abs().max() / 448.0  # e4m3fn's largest finite value
            fp8[key] = (value.float() / scale).to(torch.float8_e4m3fn)
            rounded[key] = fp8[key].float() * scale
            scales[comfy_name(key)[: -len("weight")] + "scale_weight"] = scale.reshape(())
        else:
            fp8[key] = value
    comfy = {comfy_name(k): v for k, v in fp8.items()} | scales
    comfy["scaled_fp8"] = torch.empty(0, dtype=torch.float8_e4m3fn)
    comfy["spiece_model"] = golden["comfy_state"]["spiece_model"]
    save_file(comfy, tmp_path / "umt5_xxl_fp8_e4m3fn_scaled.safetensors")
    save_file({**golden["weights"], **rounded}, tmp_path / "reference.safetensors")
    enc = load_text_encoder(str(tmp_path / "umt5_xxl_fp8_e4m3fn_scaled.safetensors"), dtype=torch.float32)
    ref = load_text_encoder(str(tmp_path / "reference.safetensors"), str(golden["tokenizer"]), dtype=torch.float32)
    for name in PROMPTS:
        prompt = golden["prompts"][name]
        out = enc.encode(prompt)
        assert_matches(out, ref.encode(prompt))
        assert (out[0] - golden["case"][f"{name}.output"]).abs().max() > 1e-4  # the fp8 rounding is real


def test_config_is_read_from_the_weights(encoder):
    config = encoder.model.config  # configs.json t5_tiny: dim 16, 2 heads, ffn 40, 3 layers, vocab 256
    assert (config.d_model, config.num_heads, config.d_ff, config.num_layers, config.vocab_size) == (16, 2, 40, 3, 256)
    assert config.d_kv == 8 and config.relative_attention_num_buckets == 32 and config.is_gated_act


def test_cleaning_facts():
    # ftfy unescapes HTML unless the text holds tags; then the official's two html.unescape calls do
    assert clean_prompt("<b>  a &amp;amp;  b\n\t c ") == "<b> a & b c"
    assert clean_prompt("The Mona Lisa doesnÃ¢â‚¬â„¢t smile.") == "The Mona Lisa doesn't smile."  # ftfy repair


def test_long_prompts_are_truncated_to_512_with_the_end_token(golden):
    tok = PromptTokenizer.from_path(str(golden["tokenizer"]))
    ids = tok.ids("a woman " * 400)
    assert len(ids) == MAX_TOKENS and ids[-1] == 1 and ids[:2] == [3, 5]


def test_wrong_files_are_named(golden, tmp_path):
    clip_l = tmp_path / "clip_l.safetensors"
    save_file({"text_model.encoder.layers.0.mlp.fc1.weight": torch.zeros(4, 2)}, clip_l)
    with pytest.raises(EncoderInputError, match="CLIP text encoder.*umt5-xxl"):
        load_text_encoder(str(clip_l))
    lonely = tmp_path / "models_t5.pth"
    torch.save(golden["weights"], lonely)
    with pytest.raises(EncoderInputError, match="no tokenizer"):
        load_text_encoder(str(lonely))
    with pytest.raises(EncoderInputError, match="does not exist"):
        load_text_encoder(str(tmp_path / "missing.safetensors"))
    with pytest.raises(EncoderInputError, match="neither tokenizer.json nor spiece.model"):
        load_text_encoder(golden["file"], str(tmp_path))


def test_nodes_produce_conditioning(golden):
    (t5,) = MultiTalkTextEncoderLoader().load(golden["comfy"], "", "cpu", "fp32")
    positive, negative = MultiTalkTextEncode().encode(t5, golden["prompts"]["short"], "   ")
    assert isinstance(positive, list) and isinstance(positive[0][1], dict)
    assert_matches(positive[0][0][0], golden["case"]["short.output"])
    assert torch.equal(negative[0][0], t5.encode(DEFAULT_NEGATIVE_PROMPT))  # empty negative = official one
    inputs = MultiTalkTextEncoderLoader.INPUT_TYPES()["required"]
    assert all("tooltip" in spec[1] for spec in inputs.values())
    assert MultiTalkTextEncode.INPUT_TYPES()["required"]["negative"][1]["default"] == DEFAULT_NEGATIVE_PROMPT
