"""GGUF files: torch dequantisation equals the gguf package's own decoders, files read into the
released key layout with quantised tensors kept as raw (memory-mapped) bytes, and bad files get
errors that name the file and say what to do."""
from __future__ import annotations

import gguf
import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType as Q

from comfyui_multitalk.models.errors import CheckpointError
from comfyui_multitalk.models.weights import gguf_dequant
from comfyui_multitalk.models.weights.gguf import read_gguf
from comfyui_multitalk.models.weights.gguf_dequant import dequantize
from comfyui_multitalk.models.weights.gguf_kquants import quantize_k
from comfyui_multitalk.models.weights.gguf_weight import GGUFWeight
from comfyui_multitalk.models.dit.tiny import random_dit_state_dict, tiny_dit_config
from comfyui_multitalk.models.weights.gguf_write import city96_qtype_rule, write_tiny_gguf

# GGML block structs (ggml-common.h): (values per block, bytes per block, byte offsets of f16 fields).
BLOCKS = {
    Q.Q8_0: (32, 34, (0,)), Q.Q4_0: (32, 18, (0,)), Q.Q4_1: (32, 20, (0, 2)), Q.Q5_0: (32, 22, (0,)),
    Q.Q5_1: (32, 24, (0, 2)), Q.Q2_K: (256, 84, (80, 82)), Q.Q3_K: (256, 110, (108,)),
    Q.Q4_K: (256, 144, (0, 2)), Q.Q5_K: (256, 176, (0, 2)), Q.Q6_K: (256, 210, (208,)),
}


def random_blocks(qtype: Q, rows: int, blocks_per_row: int, seed: int = 0) -> np.ndarray:
    """Random bytes in valid blocks: every bit pattern of the packed fields, finite f16 scales."""
    _, size, halves = BLOCKS[qtype]
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 256, size=(rows * blocks_per_row, size), dtype=np.uint8)
    for offset in halves:
        scale = rng.uniform(-2.0, 2.0, size=raw.shape[0]).astype(np.float16)
        raw[:, offset:offset + 2] = scale.reshape(-1, 1).view(np.uint8)
    return raw.reshape(rows, blocks_per_row * size)


@pytest.mark.parametrize("qtype", list(BLOCKS), ids=lambda q: q.name)
def test_dequantize_equals_gguf_numpy_decoder(qtype):
    raw = random_blocks(qtype, rows=3, blocks_per_row=2)
    expected = torch.from_numpy(gguf.quants.dequantize(raw, qtype))
    shape = (3, 2 * BLOCKS[qtype][0])
    out = dequantize(torch.from_numpy(raw), qtype, shape)
    assert out.dtype == torch.float32 and out.shape == shape
    assert torch.equal(out, expected)  # bit for bit
    # other dtypes: one rounding of the exact fp32 values
    assert torch.equal(dequantize(torch.from_numpy(raw), qtype, shape, dtype=torch.bfloat16),
                       expected.to(torch.bfloat16))


@pytest.mark.parametrize("qtype", [Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1], ids=lambda q: q.name)
def test_dequantize_equals_gguf_on_quantised_weights(qtype):
    values = np.random.default_rng(1).standard_normal((4, 96)).astype(np.float32)
    raw = gguf.quants.quantize(values, qtype)
    expected = torch.from_numpy(gguf.quants.dequantize(raw, qtype))
    assert torch.equal(dequantize(torch.from_numpy(raw), qtype, (4, 96)), expected)


def test_dequantize_in_chunks_equals_whole(monkeypatch):
    raw = torch.from_numpy(random_blocks(Q.Q4_K, rows=5, blocks_per_row=3))
    expected = torch.from_numpy(gguf.quants.dequantize(raw.numpy(), Q.Q4_K))
    monkeypatch.setattr(gguf_dequant, "CHUNK_VALUES", 512)  # 2 blocks per chunk, 15 blocks
    assert torch.equal(dequantize(raw, Q.Q4_K, (5, 768)), expected)


@pytest.mark.parametrize("qtype", [Q.F32, Q.F16, Q.BF16], ids=lambda q: q.name)
def test_float_types_are_plain_values(qtype):
    values = np.random.default_rng(2).standard_normal((3, 8)).astype(np.float32)
    raw = np.ascontiguousarray(gguf.quants.quantize(values, qtype)).view(np.uint8)
    expected = torch.from_numpy(gguf.quants.dequantize(gguf.quants.quantize(values, qtype), qtype).copy())
    assert torch.equal(dequantize(torch.from_numpy(raw), qtype, (3, 8)), expected.reshape(3, 8))


@pytest.mark.parametrize("qtype,rel_rms", [(Q.Q4_K, 0.10), (Q.Q5_K, 0.05), (Q.Q6_K, 0.03)], ids=lambda v: str(v))
def test_k_quant_encoder_writes_blocks_the_gguf_decoder_reads(qtype, rel_rms):
    values = 0.1 * np.random.default_rng(3).standard_normal((8, 512)).astype(np.float32)
    raw = quantize_k(values, qtype)
    assert raw.shape == (8, 2 * BLOCKS[qtype][1]) and raw.dtype == np.uint8
    back = gguf.quants.dequantize(raw, qtype)
    assert np.sqrt(np.mean((back - values) ** 2) / np.mean(values ** 2)) < rel_rms


# --- reading files ----------------------------------------------------------------------------


def _dit_like() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "patch_embedding.weight": torch.randn(32, 36, 1, 2, 2, generator=g),   # 5-D, F32
        "blocks.0.modulation": torch.randn(1, 6, 32, generator=g),              # 3-D, F32
        "blocks.0.self_attn.q.weight": torch.randn(32, 64, generator=g),        # Q8_0
        "blocks.0.self_attn.q.bias": torch.randn(32, generator=g),              # F32
        "text_embedding.0.weight": torch.randn(32, 16, generator=g),            # F16
        "img_emb.proj.1.weight": torch.randn(32, 24, generator=g),              # BF16
        "blocks.0.audio_cross_attn.kv_linear.weight": torch.randn(64, 8, generator=g),  # rows of 8: reshaped
    }


def _types(key, tensor):
    if key == "text_embedding.0.weight":
        return Q.F16
    if key == "img_emb.proj.1.weight":
        return Q.BF16
    return Q.Q8_0 if tensor.dim() == 2 else Q.F32


def test_round_trip_keeps_quantised_bytes_memory_mapped(tmp_path, monkeypatch):
    sd = _dit_like()
    path = tmp_path / "wan2.1-i2v-14b-480p-Q8_0.gguf"
    write_tiny_gguf(sd, path, _types)
    monkeypatch.setattr(gguf_dequant, "BLOCK_DECODERS", {})  # any dequantisation during reading fails
    weights = read_gguf(path)
    monkeypatch.undo()
    q = weights["blocks.0.self_attn.q.weight"]
    assert isinstance(q, GGUFWeight) and q.qtype == Q.Q8_0 and q.shape == (32, 64)
    assert q.raw.dtype == torch.uint8 and q.raw.numel() == 32 * 64 // 32 * 34  # 34 bytes per 32 values
    expected_bytes = gguf.quants.quantize(sd["blocks.0.self_attn.q.weight"].numpy(), Q.Q8_0)
    assert torch.equal(q.raw.reshape(-1), torch.from_numpy(expected_bytes).reshape(-1))
    assert _mapped_from(q.raw, path)
    assert torch.equal(q.dequantize(), torch.from_numpy(gguf.quants.dequantize(expected_bytes, Q.Q8_0)))
    # float tensors: plain tensors in their real shapes, values as written
    for key in ("patch_embedding.weight", "blocks.0.modulation", "blocks.0.self_attn.q.bias"):
        assert not isinstance(weights[key], GGUFWeight) and torch.equal(weights[key], sd[key])
    assert weights["text_embedding.0.weight"].dtype == torch.float16
    assert torch.equal(weights["text_embedding.0.weight"], sd["text_embedding.0.weight"].half())
    assert weights["img_emb.proj.1.weight"].dtype == torch.bfloat16
    assert torch.equal(weights["img_emb.proj.1.weight"], sd["img_emb.proj.1.weight"].bfloat16())


def test_writing_to_read_tensors_never_changes_the_file(tmp_path):
    path = tmp_path / "users_model.gguf"
    write_tiny_gguf(_dit_like(), path, _types)
    before = path.read_bytes()
    weights = read_gguf(path)
    weights["blocks.0.self_attn.q.bias"].add_(1.0)  # e.g. a model trained in place after loading
    weights["blocks.0.self_attn.q.weight"].raw.zero_()
    del weights
    assert path.read_bytes() == before


def _mapped_from(tensor: torch.Tensor, path) -> bool:
    """True when the tensor's bytes lie in a memory mapping of `path` (Linux /proc/self/maps)."""
    address, real = tensor.data_ptr(), str(path.resolve())
    with open("/proc/self/maps") as maps:
        for line in maps:
            parts = line.split()
            if len(parts) >= 6 and parts[5] == real:
                start, end = (int(x, 16) for x in parts[0].split("-"))
                if start <= address < end:
                    return True
    return False


def test_original_shape_metadata_restores_reshaped_tensors(tmp_path):
    sd = _dit_like()
    path = tmp_path / "model.gguf"
    write_tiny_gguf(sd, path, _types)
    reader = gguf.GGUFReader(path)
    field = reader.get_field("comfy.gguf.orig_shape.blocks.0.audio_cross_attn.kv_linear.weight")
    assert field is not None and field.contents() == [64, 8]  # stored as rows of one block
    kv = read_gguf(path)["blocks.0.audio_cross_attn.kv_linear.weight"]
    stored = next(t for t in reader.tensors if t.name.endswith("kv_linear.weight"))
    assert kv.shape == (64, 8)
    expected = gguf.quants.dequantize(stored.data, Q.Q8_0).reshape(64, 8)
    assert torch.equal(kv.dequantize(), torch.from_numpy(expected))


@pytest.mark.parametrize("prefix", ["model.diffusion_model.", "diffusion_model."])
def test_prefixed_tensor_names_read_as_released_names(tmp_path, prefix):
    sd = _dit_like()
    path = tmp_path / "prefixed.gguf"
    write_tiny_gguf(sd, path, _types, prefix=prefix)
    weights = read_gguf(path)
    assert set(weights) == set(sd)
    assert weights["blocks.0.audio_cross_attn.kv_linear.weight"].shape == (64, 8)


def test_untagged_file_with_wan_names_is_read(tmp_path):
    path = tmp_path / "sdcpp.gguf"
    write_tiny_gguf(_dit_like(), path, _types, arch=None)
    assert gguf.GGUFReader(path).get_field("general.architecture") is None
    assert set(read_gguf(path)) == set(_dit_like())


def test_city96_q4_k_m_rule_gives_the_types_of_the_real_files(tmp_path):
    # city96's llama.cpp patch for Wan: only 2-D tensors quantised; embeddings, time layers,
    # img_emb and head never; Q4_K_M puts attention v and ffn.2 in Q6_K; rows that are no multiple
    # of 256 fall back to F16; convert.py keeps 1-D tensors and modulation in F32.
    state = random_dit_state_dict(tiny_dit_config(dim=256, num_heads=2), seed=0)
    path = write_tiny_gguf(state, tmp_path / "wan-Q4_K_M.gguf", city96_qtype_rule("Q4_K_M"))
    types = {t.name: t.tensor_type.name for t in gguf.GGUFReader(path).tensors}
    expected = {
        "blocks.0.self_attn.q.weight": "Q4_K", "blocks.0.self_attn.v.weight": "Q6_K",
        "blocks.1.cross_attn.v_img.weight": "Q4_K", "blocks.0.ffn.0.weight": "Q4_K", "blocks.0.ffn.2.weight": "Q6_K",
        "blocks.0.audio_cross_attn.q_linear.weight": "Q4_K", "blocks.0.audio_cross_attn.kv_linear.weight": "F16",
        "audio_proj.proj1.weight": "Q4_K", "text_embedding.0.weight": "F16", "time_projection.1.weight": "F16",
        "img_emb.proj.1.weight": "F16", "head.head.weight": "F16", "patch_embedding.weight": "F32",
        "blocks.0.modulation": "F32", "head.modulation": "F32", "blocks.0.self_attn.q.bias": "F32",
        "blocks.0.norm3.weight": "F32",
    }
    assert {key: types[key] for key in expected} == expected


# --- errors -----------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="nowhere.gguf.*does not exist"):
        read_gguf(tmp_path / "nowhere.gguf")


def test_not_a_gguf_file(tmp_path):
    path = tmp_path / "wan_i2v.gguf"
    path.write_bytes(b"PK\x03\x04 certainly not GGUF" * 10)
    with pytest.raises(CheckpointError, match=r"wan_i2v.gguf.*not a GGUF file.*PK"):
        read_gguf(path)


@pytest.mark.parametrize("keep", [0.05, 0.5, 0.99])
def test_truncated_file(tmp_path, keep):
    path = tmp_path / "wan2.1-i2v-14b-480p-Q4_K_M.gguf"
    write_tiny_gguf(_dit_like(), path, _types)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(CheckpointError, match="wan2.1-i2v-14b-480p-Q4_K_M.gguf.*truncated.*download it again"):
        read_gguf(path)


@pytest.mark.parametrize("recorded,message", [([3, 5], "gives shape \\(3, 5\\).*damaged"),
                                              (["a", "b"], "should be an array of int32")])
def test_damaged_original_shape_metadata(tmp_path, recorded, message):
    path = tmp_path / "wan-damaged.gguf"
    writer = gguf.GGUFWriter(str(path), arch="wan")
    writer.add_array("comfy.gguf.orig_shape.blocks.0.ffn.0.weight", recorded)
    writer.add_tensor("blocks.0.ffn.0.weight", gguf.quants.quantize(np.ones((2, 32), np.float32), Q.Q8_0),
                      raw_dtype=Q.Q8_0)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(CheckpointError, match="wan-damaged.gguf.*" + message):
        read_gguf(path)


def test_language_model_gguf_is_refused_with_its_architecture(tmp_path):
    path = tmp_path / "llama-3-8b.Q4_0.gguf"
    llm = {"token_embd.weight": torch.randn(64, 32), "blk.0.attn_q.weight": torch.randn(32, 32),
           "blk.0.attn_norm.weight": torch.randn(32)}
    write_tiny_gguf(llm, path, _types, arch="llama")
    with pytest.raises(CheckpointError, match="llama-3-8b.Q4_0.gguf.*architecture 'llama'.*Wan2.1"):
        read_gguf(path)


def test_unsupported_quant_type_is_named_with_the_supported_ones(tmp_path):
    path = tmp_path / "wan-IQ4_XS.gguf"
    writer = gguf.GGUFWriter(str(path), arch="wan")
    raw = np.random.default_rng(0).integers(0, 256, size=(4, 136), dtype=np.uint8)  # IQ4_XS: 136 B / 256
    writer.add_tensor("blocks.0.self_attn.q.weight", raw, raw_dtype=Q.IQ4_XS)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(CheckpointError, match=r"wan-IQ4_XS.gguf.*'blocks.0.self_attn.q.weight' \(IQ4_XS\)"
                                              r".*Supported types: ") as error:
        read_gguf(path)
    listed = str(error.value).split("Supported types: ")[1]
    assert all(name in listed for name in ("Q8_0", "Q6_K", "Q5_K", "Q5_0", "Q4_K", "Q4_0", "F16", "BF16"))
