"""Merged LoRAs on quantised bases: computed in fp32 from the dequantised weight and re-quantised
with a fresh scale (fp8: same granularity as the base; GGUF: Q8_0, checked byte for byte against
the gguf package's own encoder); unmerged LoRAs leave the quantised weight as it is."""
from __future__ import annotations

import sys
from pathlib import Path

import gguf
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from gguf import GGMLQuantizationType as Q

from comfyui_multitalk.models import load_dit
from comfyui_multitalk.models.lora import apply_loras, read_lora
from comfyui_multitalk.models.weights import Fp8Linear
from comfyui_multitalk.models.weights.gguf_linear import GGUFLinear
from comfyui_multitalk.models.weights.gguf_quantize import quantize_q8_0
from comfyui_multitalk.models.weights.gguf_write import write_tiny_gguf

sys.path.insert(0, str(Path(__file__).parent))
from lora_helpers import random_pairs, tiny_state, write_format  # noqa: E402

FP8_MAX = 448.0


def _lowrank(pairs: dict, layer: str, strength: float, alpha: float) -> torch.Tensor:
    up, down = pairs[layer]
    return strength * alpha / up.shape[1] * (up @ down)


def test_q8_0_encoder_matches_the_gguf_package():
    g = torch.Generator().manual_seed(0)
    values = torch.randn(64, 96, generator=g) * torch.logspace(-3, 2, 96)
    values[3, :32] = 0  # an all-zero block
    values[5, 40] = 1e4  # a block dominated by one value
    ours = quantize_q8_0(values).numpy()
    theirs = gguf.quants.quantize(values.numpy(), Q.Q8_0).reshape(-1)
    assert np.array_equal(ours, theirs)


def test_fp8_merge_requantises_per_tensor_and_per_channel():
    state = tiny_state()
    g = torch.Generator().manual_seed(2)
    channel_scale = torch.rand(64, generator=g) * 0.01 + 0.001
    state["blocks.0.ffn.0.weight"] = (torch.randn(64, 32, generator=g) * 100).clamp(-448, 448).to(torch.float8_e4m3fn)
    state["blocks.0.ffn.0.scale_weight"] = channel_scale  # a per-channel scaled fp8 layer, as files have
    base = load_dit(state, dtype="fp8_e4m3fn", num_heads=2, text_len=16)
    tensor_layer, channel_layer = base.blocks[1].self_attn.q, base.blocks[0].ffn[0]
    assert isinstance(tensor_layer, Fp8Linear) and channel_layer.scale_weight.shape == (64,)
    before = (tensor_layer.weight.clone(), channel_layer.weight.clone())
    pairs = random_pairs(state, layers=("blocks.1.self_attn.q", "blocks.0.ffn.0"))
    patched, _ = apply_loras(base, [(read_lora(write_format(pairs, "comfyui", 2.0)), 0.6)], "merged")
    # per tensor: one fresh scale, max |w| -> 448
    wanted = tensor_layer.weight.float() * tensor_layer.scale_weight + _lowrank(pairs, "blocks.1.self_attn.q", 0.6, 2.0)
    scale = wanted.abs().max() / FP8_MAX
    merged = patched.blocks[1].self_attn.q
    assert merged.scale_weight.dim() == 0 and torch.allclose(merged.scale_weight, scale, rtol=1e-6, atol=0)
    assert torch.equal(merged.weight.view(torch.uint8), (wanted / scale).to(torch.float8_e4m3fn).view(torch.uint8))
    # per channel: one fresh scale per output row
    wanted = channel_layer.weight.float() * channel_scale[:, None] + _lowrank(pairs, "blocks.0.ffn.0", 0.6, 2.0)
    rows = wanted.abs().amax(dim=1) / FP8_MAX
    merged = patched.blocks[0].ffn[0]
    assert merged.scale_weight.shape == (64,) and torch.allclose(merged.scale_weight, rows, rtol=1e-6, atol=0)
    assert torch.equal(merged.weight.view(torch.uint8), (wanted / rows[:, None]).to(torch.float8_e4m3fn).view(torch.uint8))
    assert torch.equal(tensor_layer.weight.view(torch.uint8), before[0].view(torch.uint8))  # base untouched
    assert torch.equal(channel_layer.weight.view(torch.uint8), before[1].view(torch.uint8))


def test_fp8_unmerged_adds_the_low_rank_term_to_the_dequantised_product():
    state = tiny_state()
    base = load_dit(state, dtype="fp8_e4m3fn", num_heads=2, text_len=16)
    pairs = random_pairs(state, layers=("blocks.1.ffn.2",))
    patched, _ = apply_loras(base, [(read_lora(write_format(pairs, "kohya", 4.0)), 1.5)], "unmerged")
    layer, plain = patched.blocks[1].ffn[2], base.blocks[1].ffn[2]
    assert layer.weight is plain.weight  # the fp8 bytes are shared, not copied
    x = torch.randn(5, 64, dtype=torch.bfloat16)
    wanted = (F.linear(x.float(), plain.weight.float() * plain.scale_weight, plain.bias.float())
              + x.float() @ _lowrank(pairs, "blocks.1.ffn.2", 1.5, 4.0).T)
    assert torch.allclose(layer(x).float(), wanted, rtol=2e-2, atol=2e-2)


def _gguf_rule(key: str, tensor: torch.Tensor):
    if tensor.dim() != 2:
        return Q.F32
    if key == "blocks.1.self_attn.o.weight":
        return Q.Q4_0
    if key == "blocks.0.cross_attn.k.weight":
        return Q.F16
    return Q.Q8_0 if key.startswith("blocks.") else Q.F16


def test_gguf_merge_reencodes_q8_0_and_keeps_float_types(tmp_path):
    state = tiny_state()
    path = write_tiny_gguf(state, tmp_path / "tiny.gguf", _gguf_rule)
    base = load_dit(path, dtype="fp32", num_heads=2, text_len=16)
    decoded = {t.name: torch.from_numpy(gguf.quants.dequantize(t.data, t.tensor_type).copy()).float()
               for t in gguf.GGUFReader(str(path)).tensors}
    layers = ("blocks.0.self_attn.q", "blocks.1.self_attn.o", "blocks.0.cross_attn.k")
    pairs = random_pairs(state, layers=layers)
    raw_before = base.blocks[0].self_attn.q.weight.clone()
    patched, _ = apply_loras(base, [(read_lora(write_format(pairs, "comfyui", 2.0)), 0.9)], "merged")
    for layer in layers:
        module = patched.get_submodule(layer)
        wanted = decoded[f"{layer}.weight"].reshape(module.out_features, -1) + _lowrank(pairs, layer, 0.9, 2.0)
        if layer.endswith("cross_attn.k"):  # an F16 GGUF tensor loads as a dense fp32 layer: merged densely
            assert type(module) is torch.nn.Linear and torch.allclose(module.weight, wanted, atol=1e-6, rtol=0)
        else:  # Q8_0, and the Q4_0 layer re-encoded as Q8_0 (the finest type)
            assert module.qtype == Q.Q8_0 and isinstance(module, GGUFLinear)
            expected = gguf.quants.quantize(wanted.numpy(), Q.Q8_0).reshape(-1)
            assert np.array_equal(module.weight.numpy(), expected)
    assert base.blocks[1].self_attn.o.qtype == Q.Q4_0 and torch.equal(base.blocks[0].self_attn.q.weight, raw_before)


def test_gguf_unmerged_keeps_the_blocks_and_adds_the_term(tmp_path):
    state = tiny_state()
    base = load_dit(write_tiny_gguf(state, tmp_path / "tiny.gguf", _gguf_rule), dtype="fp32", num_heads=2, text_len=16)
    pairs = random_pairs(state, layers=("blocks.1.self_attn.o",))
    patched, _ = apply_loras(base, [(read_lora(write_format(pairs, "peft_default", 8.0)), 0.5)], "unmerged")
    layer, plain = patched.blocks[1].self_attn.o, base.blocks[1].self_attn.o
    assert layer.weight is plain.weight and layer.qtype == Q.Q4_0  # still the file's Q4_0 blocks
    x = torch.randn(3, 32)
    wanted = plain(x) + x @ _lowrank(pairs, "blocks.1.self_attn.o", 0.5, 8.0).T
    assert torch.allclose(layer(x), wanted, atol=1e-5)
