"""A MultiTalkDiT built from GGUF files (city96-style DiT, kijai-style audio layers) keeps its
block linears quantised, dequantises them just in time, and computes what the same model with
the dequantised weights in fp32 computes."""
from __future__ import annotations

import gguf
import pytest
import torch
import torch.nn.functional as F
from gguf import GGMLQuantizationType as Q

from comfyui_multitalk.models import load_dit
from comfyui_multitalk.models.dit.model import MultiTalkDiT
from comfyui_multitalk.models.dit.tiny import random_dit_state_dict, run_tiny_dit, tiny_dit_config, tiny_dit_inputs
from comfyui_multitalk.models.errors import CheckpointError
from comfyui_multitalk.models.weights.gguf import read_gguf
from comfyui_multitalk.models.weights.gguf_linear import GGUFLinear
from comfyui_multitalk.models.weights.gguf_weight import GGUFWeight
from comfyui_multitalk.models.weights.gguf_write import write_tiny_gguf

TEXT_LEN = 16
# Released MultiTalk/InfiniteTalk audio tensor names (multitalk.safetensors; qk_norm=False, so no
# q_norm/k_norm), per block and global.
AUDIO_BLOCK_KEYS = ("norm_x.weight", "norm_x.bias", "audio_cross_attn.q_linear.weight",
                    "audio_cross_attn.q_linear.bias", "audio_cross_attn.kv_linear.weight",
                    "audio_cross_attn.kv_linear.bias", "audio_cross_attn.proj.weight", "audio_cross_attn.proj.bias")
AUDIO_GLOBAL_KEYS = tuple(f"audio_proj.{m}.{p}" for m in ("proj1", "proj1_vf", "proj2", "proj3", "norm")
                          for p in ("weight", "bias"))


def is_audio(key: str) -> bool:
    return key.startswith("audio_proj.") or any(key.endswith(suffix) for suffix in AUDIO_BLOCK_KEYS)


def city96_q8(key, tensor):
    """city96's Wan rules: 2-D block/audio weights quantised, embeddings/head F16, the rest F32."""
    if tensor.dim() != 2:
        return Q.F32
    if key.startswith(("patch_embedding", "text_embedding", "time_", "img_emb", "head")):
        return Q.F16
    return Q.Q8_0


def k_mix(key, tensor):
    """A Q4_K_M-like mix on a width-256 model: v and ffn.2 in Q6_K, audio queries Q5_K, rows that
    are no multiple of 256 (kv_linear, audio_proj.proj2/3) reshaped to block rows, legacy types too."""
    if tensor.dim() != 2 or key.startswith(("patch_embedding", "text_embedding", "time_", "img_emb", "head")):
        return Q.F32 if tensor.dim() != 2 else Q.F16
    if key.endswith((".v.weight", ".ffn.2.weight")):
        return Q.Q6_K
    if "audio_cross_attn.q_linear" in key:
        return Q.Q5_K
    if key.endswith(".o.weight"):
        return Q.Q5_0 if "cross_attn" in key else Q.Q4_0
    return Q.Q4_K


def numpy_dequantised(path) -> dict[str, torch.Tensor]:
    """The file's tensors decoded by the gguf package alone (reference, not our decoder)."""
    reader = gguf.GGUFReader(str(path))
    out = {}
    for tensor in reader.tensors:
        field = reader.get_field("comfy.gguf.orig_shape." + tensor.name)
        shape = field.contents() if field is not None else list(reversed(tensor.shape.tolist()))
        values = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
        out[tensor.name] = torch.from_numpy(values.copy()).reshape(shape).float()
    return out


def gguf_model(weights, num_heads: int) -> MultiTalkDiT:
    """The pack's loader on GGUF weights (a read_gguf state dict, or the files), computing in fp32."""
    return load_dit(weights, dtype="fp32", num_heads=num_heads, text_len=TEXT_LEN)


def inputs(seed: int = 3):
    return tiny_dit_inputs(seed)


run = run_tiny_dit


def write_pair(folder, state, rule):
    """(city96-style base DiT file, kijai-style audio-layer file)."""
    base = write_tiny_gguf({k: v for k, v in state.items() if not is_audio(k)},
                           folder / "wan2.1-i2v-14b-480p-tiny.gguf", rule)
    audio = write_tiny_gguf({k: v for k, v in state.items() if is_audio(k)},
                            folder / "Wan2_1-InfiniteTalk_Single_tiny.gguf", rule)
    return base, audio


@pytest.fixture(scope="module")
def q8_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("q8")
    return write_pair(folder, random_dit_state_dict(tiny_dit_config(), seed=1), city96_q8)


@pytest.mark.parametrize("dim,rule,types", [(32, city96_q8, {"Q8_0"}),
                                            (256, k_mix, {"Q4_K", "Q5_K", "Q6_K", "Q5_0", "Q4_0"})],
                         ids=["Q8_0", "K-quants"])
def test_gguf_dit_computes_what_the_dequantised_fp32_model_computes(tmp_path, dim, rule, types):
    state = random_dit_state_dict(tiny_dit_config(dim=dim, num_heads=2), seed=1)
    base, audio = write_pair(tmp_path, state, rule)
    model = gguf_model([base, audio], num_heads=2)  # the files, as users give them
    layers = [m for m in model.modules() if isinstance(m, GGUFLinear)]
    assert {m.qtype.name for m in layers} == types
    assert all(m.weight.dtype == torch.uint8 for m in layers)
    reference = load_dit({**numpy_dequantised(base), **numpy_dequantised(audio)}, dtype="fp32",
                         num_heads=2, text_len=TEXT_LEN)
    data = inputs()
    expected = run(reference, data)
    out = run(model, data)
    assert (out - expected).abs().max().item() <= 1e-6 * max(1.0, expected.abs().max().item())
    assert set(model.state_dict()) == set(reference.state_dict())  # released names


def test_kijai_audio_file_reads_into_released_audio_names(q8_files):
    _, audio = q8_files
    weights = read_gguf(audio)
    expected = set(AUDIO_GLOBAL_KEYS) | {f"blocks.{i}.{k}" for i in range(2) for k in AUDIO_BLOCK_KEYS}
    assert set(weights) == expected
    assert isinstance(weights["blocks.1.audio_cross_attn.q_linear.weight"], GGUFWeight)
    assert isinstance(weights["audio_proj.proj1.weight"], GGUFWeight)
    assert weights["audio_proj.proj1.weight"].shape == (8, 5 * 12 * 768)


def test_audio_only_file_is_read_whatever_its_architecture_tag(tmp_path):
    state = random_dit_state_dict(tiny_dit_config(), seed=2)
    audio = {k: v for k, v in state.items() if is_audio(k)}
    path = write_tiny_gguf(audio, tmp_path / "infinitetalk.gguf", city96_q8, arch="infinitetalk")
    assert set(read_gguf(path)) == set(audio)


def test_q8_0_model_memory_is_the_quantised_size(q8_files):
    weights = {**read_gguf(q8_files[0]), **read_gguf(q8_files[1])}
    quantised = [v.numel() for v in weights.values() if isinstance(v, GGUFWeight)]
    model = gguf_model(weights, num_heads=2)
    full = load_dit(random_dit_state_dict(tiny_dit_config(), seed=1), dtype="fp32", num_heads=2, text_len=TEXT_LEN)
    held = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    full_held = sum(t.numel() * t.element_size() for t in [*full.parameters(), *full.buffers()])
    # Q8_0: 34 bytes per 32 values instead of 4 bytes per value; everything else as in fp32
    assert held == full_held - 4 * sum(quantised) + sum(n // 32 * 34 for n in quantised)


def test_gguf_linear_computes_in_the_input_dtype_and_moves_its_bytes(q8_files):
    weights = read_gguf(q8_files[0])
    layer = GGUFLinear(32, 32)
    layer.load_state_dict({"weight": weights["blocks.0.self_attn.q.weight"],
                           "bias": weights["blocks.0.self_attn.q.bias"]}, assign=True)
    x = torch.randn(5, 32, generator=torch.Generator().manual_seed(0)).bfloat16()
    w = weights["blocks.0.self_attn.q.weight"].dequantize()
    out = layer(x)
    assert out.dtype == torch.bfloat16
    assert torch.equal(out, F.linear(x, w.bfloat16(), weights["blocks.0.self_attn.q.bias"].bfloat16()))
    layer.to(torch.float16)
    assert layer.weight.dtype == torch.uint8 and layer.qtype == Q.Q8_0  # dtype casts leave the blocks alone
    moved = layer.to("meta")
    assert moved.weight.device.type == "meta" and moved.weight.dtype == torch.uint8
    assert moved.weight.numel() == 32 * 32 // 32 * 34
    assert weights["blocks.0.self_attn.q.weight"].to("meta").raw.device.type == "meta"


def test_gguf_linear_takes_float_weights_and_another_gguf_models_state(q8_files):
    weights = read_gguf(q8_files[0])
    layer = GGUFLinear(32, 32)
    layer.load_state_dict({"weight": weights["blocks.0.self_attn.q.weight"], "bias": torch.zeros(32)})
    twin = GGUFLinear(32, 32)
    twin.qtype = Q.Q8_0
    twin.load_state_dict(layer.state_dict())  # raw bytes of the same type
    x = torch.randn(3, 32, generator=torch.Generator().manual_seed(1))
    assert torch.equal(twin(x), layer(x))
    plain = GGUFLinear(32, 32)
    w16 = torch.randn(32, 32, generator=torch.Generator().manual_seed(2)).half()
    plain.load_state_dict({"weight": w16, "bias": torch.zeros(32)})
    assert plain.qtype == Q.F16 and plain.weight.dtype == torch.uint8 and plain.weight.numel() == 32 * 32 * 2
    assert torch.equal(plain(x), F.linear(x, w16.float()))
    with pytest.raises(CheckpointError, match="raw bytes that are no F32 weight of shape"):
        GGUFLinear(32, 32).load_state_dict(layer.state_dict())


def test_gguf_weight_for_a_layer_of_another_size_is_refused(q8_files):
    weights = read_gguf(q8_files[0])
    layer = GGUFLinear(64, 32)
    with pytest.raises(CheckpointError, match=r"'weight' has shape \(32, 32\).*64 -> 32"):
        layer.load_state_dict({"weight": weights["blocks.0.self_attn.q.weight"], "bias": torch.zeros(32)})


def test_modulation_stored_without_its_leading_one_is_fitted(q8_files):
    weights = {**read_gguf(q8_files[0]), **read_gguf(q8_files[1])}
    weights["blocks.0.modulation"] = weights["blocks.0.modulation"].reshape(6, 32)
    model = gguf_model(weights, num_heads=2)
    assert model.blocks[0].modulation.shape == (1, 6, 32)
