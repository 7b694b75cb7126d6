"""Every supported checkpoint layout loads strictly and computes what the reference layout does;
wrong or partial files get errors that name the file and say what it is."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from comfyui_multitalk.models import load_dit
from comfyui_multitalk.models.dit.keys import is_audio_key
from comfyui_multitalk.models.weights import Fp8Linear
from comfyui_multitalk.models.dit.tiny import random_dit_state_dict, tiny_dit_config
from comfyui_multitalk.models.errors import CheckpointError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dit_fixtures import HEADS, inputs, run, weights  # noqa: E402,F401  (module fixtures)



@pytest.fixture(scope="module")
def reference(weights, inputs):
    return run(load_dit(weights, dtype="fp32", **HEADS), inputs)


def same(out, expected):
    """Equal up to kernel rounding: memory-mapped tensors sit at other alignments than fresh ones,
    and CPU matmul kernels round differently by alignment (an ulp, never more)."""
    return (out - expected).abs().max().item() <= 1e-6


def _split(weights):
    base = {k: v for k, v in weights.items() if not is_audio_key(k)}
    audio = {k: v for k, v in weights.items() if is_audio_key(k)}
    return base, audio


def _shard(weights, folder, shards=3):
    keys = sorted(weights)
    weight_map = {}
    for i in range(shards):
        name = f"diffusion_pytorch_model-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = {k: weights[k].contiguous() for k in keys[i::shards]}
        save_file(part, str(folder / name))
        weight_map.update({k: name for k in part})
    index = folder / "diffusion_pytorch_model.safetensors.index.json"
    index.write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return index


def test_single_safetensors_file(weights, inputs, reference, tmp_path):
    path = tmp_path / "model.safetensors"
    save_file(weights, str(path))
    assert same(run(load_dit(str(path), **HEADS), inputs), reference)


def test_torch_pickle_file(weights, inputs, reference, tmp_path):
    path = tmp_path / "model.pth"
    torch.save(weights, path)
    assert same(run(load_dit(path, **HEADS), inputs), reference)


@pytest.mark.parametrize("how", ["index", "folder", "shard_list"])
def test_sharded_checkpoint(weights, inputs, reference, tmp_path, how):
    index = _shard(weights, tmp_path)
    source = {"index": index, "folder": tmp_path,
              "shard_list": sorted(str(p) for p in tmp_path.glob("*.safetensors"))}[how]
    assert same(run(load_dit(source, **HEADS), inputs), reference)


def test_sharded_base_plus_audio_file(weights, inputs, reference, tmp_path):
    base, audio = _split(weights)
    (tmp_path / "base").mkdir()
    index = _shard(base, tmp_path / "base")
    save_file(audio, str(tmp_path / "multitalk.safetensors"))
    model = load_dit([index, tmp_path / "multitalk.safetensors"], **HEADS)
    assert same(run(model, inputs), reference)


@pytest.mark.parametrize("prefix", ["model.diffusion_model.", "diffusion_model."])
def test_comfyui_prefixed_files(weights, inputs, reference, tmp_path, prefix):
    path = tmp_path / "saved_from_comfyui.safetensors"
    save_file({prefix + k: v for k, v in weights.items()}, str(path))
    assert same(run(load_dit(path, **HEADS), inputs), reference)


def test_audio_file_overrides_audio_layers_of_base(weights, inputs, reference, tmp_path):
    base, audio = _split(weights)
    stale = {k: torch.zeros_like(v) for k, v in audio.items()}
    save_file({**base, **stale}, str(tmp_path / "base.safetensors"))
    save_file(audio, str(tmp_path / "infinitetalk.safetensors"))
    model = load_dit([tmp_path / "base.safetensors", tmp_path / "infinitetalk.safetensors"], **HEADS)
    assert same(run(model, inputs), reference)


@pytest.mark.parametrize("dtype,tolerance", [(torch.float16, 2e-2), (torch.bfloat16, 1e-1)])
def test_half_precision_files(weights, inputs, reference, tmp_path, dtype, tolerance):
    path = tmp_path / "half.safetensors"
    save_file({k: v.to(dtype) for k, v in weights.items()}, str(path))
    model = load_dit(path, **HEADS)
    assert model.compute_dtype == dtype
    assert {p.dtype for p in model.parameters()} == {dtype}
    out = run(model, inputs)
    assert out.dtype == torch.float32
    assert (out - reference).abs().max().item() < tolerance * reference.abs().max().item()


def _fp8_file(weights, scaled: bool):
    """Block linear weights in e4m3fn, as ComfyUI's fp8 (scaled) files store them."""
    sd, dequantised = {}, {}
    for key, value in weights.items():
        if key.startswith("blocks.") and key.endswith(".weight") and value.dim() == 2:
            scale = value.abs().max() / 448.0 if scaled else torch.tensor(1.0)
            sd[key] = (value / scale).to(torch.float8_e4m3fn)
            if scaled:
                sd[key[:-6] + "scale_weight"] = scale.reshape(())
            dequantised[key] = (sd[key].float() * scale).to(torch.bfloat16)
        else:
            sd[key] = value.to(torch.bfloat16)
            dequantised[key] = sd[key]
    if scaled:
        sd["scaled_fp8"] = torch.empty(0, dtype=torch.float8_e4m3fn)
    return sd, dequantised


@pytest.mark.parametrize("scaled", [False, True], ids=["fp8_e4m3fn", "fp8_scaled"])
def test_fp8_files_stay_fp8_and_compute_in_bf16(weights, inputs, tmp_path, scaled):
    sd, dequantised = _fp8_file(weights, scaled)
    path = tmp_path / "fp8.safetensors"
    save_file(sd, str(path))
    model = load_dit(path, **HEADS)
    q = model.blocks[0].self_attn.q
    assert isinstance(q, Fp8Linear) and q.weight.dtype == torch.float8_e4m3fn
    assert model.compute_dtype == torch.bfloat16
    expected = run(load_dit(dequantised, **HEADS), inputs)
    assert torch.equal(run(model, inputs), expected)


@pytest.mark.parametrize("fp8_audio_layers,per_block", [(False, 12), (True, 15)])
def test_fp8_on_request_quantises_block_linears(weights, inputs, reference, fp8_audio_layers, per_block):
    model = load_dit(weights, dtype="fp8_e4m3fn", fp8_audio_layers=fp8_audio_layers, **HEADS)
    fp8_layers = [m for m in model.modules() if isinstance(m, Fp8Linear)]
    # per block: 4 self-attention, 6 text/image cross-attention, 2 FFN (+ 3 audio cross-attention on request)
    assert len(fp8_layers) == 2 * per_block
    assert isinstance(model.blocks[1].audio_cross_attn.q_linear, Fp8Linear) == fp8_audio_layers
    out = run(model, inputs)
    assert (out - reference).abs().max().item() < 0.05 * reference.abs().max().item() + 0.05


def test_fp8_file_dequantised_when_another_dtype_is_asked(weights, inputs, tmp_path):
    sd, dequantised = _fp8_file(weights, scaled=True)
    model = load_dit(sd, dtype="bf16", **HEADS)
    assert not any(isinstance(m, Fp8Linear) for m in model.modules())
    assert torch.equal(run(model, inputs), run(load_dit(dequantised, **HEADS), inputs))


# --- errors -------------------------------------------------------------------------------


def test_truncated_file_is_named(weights, tmp_path):
    path = tmp_path / "wan_i2v.safetensors"
    save_file(weights, str(path))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="wan_i2v.safetensors.*truncated"):
        load_dit(path, **HEADS)


def test_text_to_video_checkpoint_is_recognised(weights):
    t2v = {k: v for k, v in weights.items() if not (k.startswith("img_emb") or "_img" in k)}
    t2v["patch_embedding.weight"] = t2v["patch_embedding.weight"][:, :16]
    with pytest.raises(CheckpointError, match="text-to-video.*Wan2.1-I2V-14B"):
        load_dit(t2v, **HEADS)


def test_audio_file_without_base_model(weights, tmp_path):
    _, audio = _split(weights)
    save_file(audio, str(tmp_path / "multitalk.safetensors"))
    with pytest.raises(CheckpointError, match="multitalk.safetensors.*only MultiTalk.*base model"):
        load_dit(tmp_path / "multitalk.safetensors", **HEADS)


def test_audio_layers_for_another_width(weights):
    base, _ = _split(weights)
    _, other_audio = _split(random_dit_state_dict(tiny_dit_config(dim=64, num_heads=2)))
    with pytest.raises(CheckpointError, match="width-64.*width 32"):
        load_dit([base, other_audio], **HEADS)


def test_base_without_audio_layers(weights):
    base, _ = _split(weights)
    with pytest.raises(CheckpointError, match="no MultiTalk audio layers.*multitalk.safetensors"):
        load_dit(base, **HEADS)


def test_base_without_audio_can_start_fresh_adapter(weights, inputs):
    base, _ = _split(weights)
    model = load_dit(base, require_audio=False, **HEADS)
    assert model.fresh_audio_layers
    assert torch.isfinite(run(model, inputs)).all()


def test_partial_checkpoint_lists_missing_keys(weights):
    partial = {k: v for k, v in weights.items() if not k.startswith("blocks.1.ffn")}
    with pytest.raises(CheckpointError, match=r"Missing keys: 4 \(blocks.1.ffn.0.bias"):
        load_dit(partial, **HEADS)


def test_wrong_kind_of_file_is_named(tmp_path):
    t5 = {"encoder.block.0.layer.0.SelfAttention.q.weight": torch.zeros(4, 4), "shared.weight": torch.zeros(8, 4)}
    save_file(t5, str(tmp_path / "umt5_xxl.safetensors"))
    with pytest.raises(CheckpointError, match="umt5_xxl.safetensors.*text encoder"):
        load_dit(tmp_path / "umt5_xxl.safetensors", **HEADS)


def test_missing_shard_is_named(weights, tmp_path):
    index = _shard(weights, tmp_path)
    (tmp_path / "diffusion_pytorch_model-00002-of-00003.safetensors").unlink()
    with pytest.raises(CheckpointError, match="missing: diffusion_pytorch_model-00002-of-00003"):
        load_dit(index, **HEADS)


def test_missing_path(tmp_path):
    with pytest.raises(CheckpointError, match="nowhere.safetensors.*does not exist"):
        load_dit(tmp_path / "nowhere.safetensors", **HEADS)
