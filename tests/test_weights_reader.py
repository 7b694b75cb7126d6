"""The one weight reader (models/weights): every file format, every quantisation layout normalised
to fp8 + scale_weight, and clear errors for files it cannot use. Files are tiny but written in
the real formats with the real key names; expected values are computed here from the stored bytes."""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import types

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from comfyui_multitalk.models.errors import CheckpointError, EncoderInputError
from comfyui_multitalk.models.weights import dequantized, open_weights

LAYER = "blocks.0.self_attn.q"


def e4m3fn_values(raw: torch.Tensor) -> np.ndarray:
    """float64 values of e4m3fn bytes, decoded by the format's definition (1-4-3 bits, bias 7)."""
    b = raw.view(torch.uint8).numpy().astype(np.int64)
    sign = np.where(b & 0x80, -1.0, 1.0)
    exp, man = (b >> 3) & 0xF, b & 0x7
    normal = (1 + man / 8.0) * np.exp2(exp - 7.0)
    subnormal = man / 8.0 * 2.0 ** -6
    return sign * np.where(exp == 0, subnormal, normal)


def fp8_of(values: torch.Tensor) -> torch.Tensor:
    return values.to(torch.float8_e4m3fn)


def digest(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def comfy_quant_tag(conf: dict) -> torch.Tensor:
    """What ComfyUI's ops.py writes: the UTF-8 JSON bytes as a uint8 tensor."""
    return torch.tensor(list(json.dumps(conf).encode("utf-8")), dtype=torch.uint8)


@pytest.fixture
def scaled():
    g = torch.Generator().manual_seed(0)
    weight = torch.randn(6, 4, generator=g) * 0.05
    scale = (weight.abs().max() / 448.0).reshape(())
    return fp8_of(weight / scale), scale.float()


# --- file formats -------------------------------------------------------------------------


def test_safetensors_reads_lazily_with_shapes_from_the_header(tmp_path):
    tensors = {"a.weight": torch.randn(3, 5), "b": torch.arange(4)}
    save_file(tensors, tmp_path / "m.safetensors", metadata={"multitalk.num_heads": "2"})
    weights = open_weights(tmp_path / "m.safetensors")
    assert weights.meta("a.weight").is_meta and tuple(weights.meta("a.weight").shape) == (3, 5)
    assert weights.metadata["multitalk.num_heads"] == "2"
    assert torch.equal(weights["a.weight"], tensors["a.weight"]) and torch.equal(weights["b"], tensors["b"])


def test_zip_checkpoint_is_memory_mapped(tmp_path):
    tensors = {"a.weight": torch.randn(3, 5)}
    torch.save({"state_dict": tensors}, tmp_path / "m.ckpt")
    weights = open_weights(tmp_path / "m.ckpt")
    assert torch.equal(weights["a.weight"], tensors["a.weight"])
    if not os.path.exists("/proc/self/maps"):
        pytest.skip("no /proc to see memory maps")
    assert str(tmp_path / "m.ckpt") in open("/proc/self/maps").read()  # mapped, not read into memory


def test_legacy_pth_is_read_without_mmap(tmp_path):
    tensors = {"a.weight": torch.randn(3, 5), "b": torch.arange(4)}
    torch.save(tensors, tmp_path / "old.pth", _use_new_zipfile_serialization=False)
    assert open(tmp_path / "old.pth", "rb").read(1) == b"\x80"  # a pickle stream, not a zip
    weights = open_weights(tmp_path / "old.pth")
    assert torch.equal(weights["a.weight"], tensors["a.weight"]) and torch.equal(weights["b"], tensors["b"])


def test_legacy_pth_with_python_objects_is_refused_safely(tmp_path):
    torch.save({"a": torch.zeros(2), "args": argparse.Namespace(lr=1)}, tmp_path / "train.pth",
               _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError, match="train.pth.*Python objects.*safetensors"):
        open_weights(tmp_path / "train.pth")


@pytest.mark.parametrize("how", ["index", "folder", "list", "unindexed_folder"])
def test_sharded_checkpoints(tmp_path, how):
    tensors = {f"k{i}": torch.full((2,), float(i)) for i in range(5)}
    names = [f"model-{i:05d}-of-00002.safetensors" for i in (1, 2)]
    save_file({k: tensors[k] for k in ("k0", "k1", "k2")}, tmp_path / names[0])
    save_file({k: tensors[k] for k in ("k3", "k4")}, tmp_path / names[1])
    if how != "unindexed_folder":
        index = {"weight_map": {k: names[0] if k in ("k0", "k1", "k2") else names[1] for k in tensors}}
        (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    sources = {"index": tmp_path / "model.safetensors.index.json", "list": [tmp_path / n for n in names]}
    source = sources.get(how, tmp_path)
    weights = open_weights(source)
    assert sorted(weights) == sorted(tensors)
    assert all(torch.equal(weights[k], v) for k, v in tensors.items())


def test_gguf_files_go_to_the_gguf_reader(tmp_path, monkeypatch):
    class Blocks:  # the GGUFWeight interface: shape, qtype, dequantize(device, dtype)
        shape, qtype = (2, 3), "Q8_0"

        def dequantize(self, device, dtype):
            return torch.arange(6, dtype=dtype, device=device).reshape(2, 3)

    calls = []
    fake = types.ModuleType("gguf")
    fake.read_gguf = lambda path: calls.append(path) or {"a.weight": Blocks(), "a.bias": torch.ones(2)}
    monkeypatch.setitem(sys.modules, "comfyui_multitalk.models.weights.gguf", fake)
    (tmp_path / "m.gguf").write_bytes(b"GGUF" + b"\0" * 16)
    state = dict(dequantized(open_weights(tmp_path / "m.gguf"), torch.float16))
    assert calls and str(calls[0]).endswith("m.gguf")
    assert torch.equal(state["a.weight"], torch.arange(6, dtype=torch.float16).reshape(2, 3))
    assert state["a.bias"].dtype == torch.float16


def test_gguf_before_the_gguf_reader_exists(tmp_path):
    import importlib.util

    if importlib.util.find_spec("comfyui_multitalk.models.weights.gguf") is not None:
        pytest.skip("the GGUF reader is installed")
    (tmp_path / "m.gguf").write_bytes(b"GGUF" + b"\0" * 16)
    with pytest.raises(CheckpointError, match="m.gguf.*GGUF.*cannot read yet"):
        open_weights(tmp_path / "m.gguf")


# --- quantisation layouts -------------------------------------------------------------------


def _check_canonical(weights, fp8, scale):
    assert sorted(weights) == [f"{LAYER}.bias", f"{LAYER}.scale_weight", f"{LAYER}.weight"]
    assert weights[f"{LAYER}.weight"].dtype == torch.float8_e4m3fn
    assert weights[f"{LAYER}.scale_weight"].dtype == torch.float32
    got = dict(dequantized(weights, torch.float32))[f"{LAYER}.weight"]
    expected = (e4m3fn_values(fp8) * scale.reshape(-1, 1).double().numpy()).astype(np.float32)
    assert np.array_equal(got.numpy(), expected)  # fp8 * scale rounded once to fp32


@pytest.mark.parametrize("where", ["tensor", "metadata"])
def test_comfyui_comfy_quant_layout(tmp_path, scaled, where):
    fp8, scale = scaled
    sd = {f"{LAYER}.weight": fp8, f"{LAYER}.weight_scale": scale, f"{LAYER}.input_scale": torch.tensor(0.5),
          f"{LAYER}.bias": torch.zeros(6)}
    meta = None
    if where == "tensor":
        sd[f"{LAYER}.comfy_quant"] = comfy_quant_tag({"format": "float8_e4m3fn", "full_precision_matrix_mult": True})
    else:
        meta = {"_quantization_metadata": json.dumps({"layers": {LAYER: {"format": "float8_e4m3fn"}}})}
    save_file(sd, tmp_path / "m.safetensors", metadata=meta)
    _check_canonical(open_weights(tmp_path / "m.safetensors"), fp8, scale)


def test_older_comfyui_scaled_fp8_layout(tmp_path, scaled):
    fp8, scale = scaled
    sd = {f"{LAYER}.weight": fp8, f"{LAYER}.scale_weight": scale, f"{LAYER}.scale_input": torch.tensor(1.0),
          f"{LAYER}.bias": torch.zeros(6), "scaled_fp8": torch.empty(0, dtype=torch.float8_e4m3fn)}
    save_file(sd, tmp_path / "m.safetensors")
    _check_canonical(open_weights(tmp_path / "m.safetensors"), fp8, scale)


@pytest.mark.parametrize("shape", [(6,), (6, 1)])
def test_per_channel_scales(tmp_path, shape):
    weight = torch.randn(6, 4) * torch.linspace(0.01, 1, 6)[:, None]
    scale = weight.abs().amax(1) / 448.0
    fp8 = fp8_of(weight / scale[:, None])
    save_file({f"{LAYER}.weight": fp8, f"{LAYER}.scale_weight": scale.reshape(shape), f"{LAYER}.bias": torch.zeros(6)},
              tmp_path / "m.safetensors")
    weights = open_weights(tmp_path / "m.safetensors")
    assert weights[f"{LAYER}.scale_weight"].shape == (6,)
    _check_canonical(weights, fp8, scale)


@pytest.mark.parametrize("fmt", ["nvfp4", "int8_tensorwise", "mxfp8"])
def test_comfy_quant_formats_we_cannot_compute(tmp_path, fmt):
    sd = {f"{LAYER}.weight": torch.zeros(6, 2, dtype=torch.uint8), f"{LAYER}.weight_scale": torch.ones(()),
          f"{LAYER}.comfy_quant": comfy_quant_tag({"format": fmt})}
    save_file(sd, tmp_path / "model_nvfp4.safetensors")
    with pytest.raises(CheckpointError, match=f"model_nvfp4.safetensors.*'{LAYER}'.*'{fmt}'.*cannot compute"):
        open_weights(tmp_path / "model_nvfp4.safetensors")


def test_unscaled_fp8_with_raw_sized_values_loads(tmp_path):
    weight = torch.randn(6, 4) * 0.05
    save_file({f"{LAYER}.weight": fp8_of(weight)}, tmp_path / "plain_fp8.safetensors")
    got = dict(dequantized(open_weights(tmp_path / "plain_fp8.safetensors"), torch.float32))[f"{LAYER}.weight"]
    assert np.array_equal(got.numpy(), e4m3fn_values(fp8_of(weight)).astype(np.float32))


# --- refusals -------------------------------------------------------------------------------


def _stripped(kind: str, fp8, scale) -> dict:
    other = "blocks.0.ffn.0"
    sd = {f"{LAYER}.weight": fp8, f"{other}.weight": fp8.clone(), f"{other}.scale_weight": scale}
    if kind == "marker":
        sd = {f"{LAYER}.weight": fp8, "scaled_fp8": torch.empty(0, dtype=torch.float8_e4m3fn)}
    elif kind == "comfy_quant":
        sd = {f"{LAYER}.weight": fp8, f"{LAYER}.comfy_quant": comfy_quant_tag({"format": "float8_e4m3fn"})}
    return sd


@pytest.mark.parametrize("kind", ["marker", "comfy_quant", "other_layers"])
def test_scaled_file_with_stripped_scales(tmp_path, scaled, kind):
    save_file(_stripped(kind, *scaled), tmp_path / "fp8_scaled.safetensors")
    with pytest.raises(CheckpointError, match=f"fp8_scaled.safetensors.*scaled fp8.*'{LAYER}.weight'.*no scale"):
        open_weights(tmp_path / "fp8_scaled.safetensors")


def test_unscaled_fp8_at_the_top_of_the_range_is_refused(tmp_path, scaled):
    fp8, _ = scaled  # a scaled file's weights, without any scale left in the file
    assert np.abs(e4m3fn_values(fp8)).max() == 448.0
    save_file({f"{LAYER}.weight": fp8, f"{LAYER}.bias": torch.zeros(6)}, tmp_path / "stripped.safetensors")
    weights = open_weights(tmp_path / "stripped.safetensors")
    with pytest.raises(CheckpointError, match=f"stripped.safetensors.*'{LAYER}.weight' reaches .w. = 448.*scale"):
        dict(dequantized(weights, torch.float32))


def test_optimum_quanto_files_are_named(tmp_path):
    sd = {f"{LAYER}.weight._data": torch.zeros(6, 4, dtype=torch.int8), f"{LAYER}.weight._scale": torch.ones(6, 1),
          f"{LAYER}.input_scale": torch.ones(()), f"{LAYER}.output_scale": torch.ones(()),
          f"{LAYER}.bias": torch.zeros(6)}
    save_file(sd, tmp_path / "dit_model_int8.safetensors")
    (tmp_path / "dit_model_map_int8.json").write_text(json.dumps({LAYER: {"weights": "qint8", "activations": "none"}}))
    with pytest.raises(CheckpointError, match="dit_model_int8.safetensors.*optimum-quanto.*bf16.*fp8"):
        open_weights(tmp_path / "dit_model_int8.safetensors")


def test_unreadable_file_says_permission_denied(tmp_path):
    path = tmp_path / "locked.safetensors"
    save_file({"a": torch.zeros(2)}, path)
    os.chmod(path, 0)
    try:
        if os.access(path, os.R_OK):
            pytest.skip("this user (root) reads files whatever their permissions")
        with pytest.raises(CheckpointError, match="locked.safetensors.*cannot be read .permission denied") as info:
            open_weights(path)
        assert "truncated" not in str(info.value)
    finally:
        os.chmod(path, 0o644)


@pytest.mark.parametrize("fmt", ["safetensors", "pth", "legacy_pth"])
def test_truncated_files_say_truncated(tmp_path, fmt):
    tensors = {"a.weight": torch.randn(64, 64), "b": torch.randn(64)}
    path = tmp_path / f"model.{fmt.split('_')[-1]}"
    if fmt == "safetensors":
        save_file(tensors, path)
    else:
        torch.save(tensors, path, _use_new_zipfile_serialization=fmt == "pth")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=f"{path.name}.*truncated.*Download it again"):
        dict(dequantized(open_weights(path)))


def test_missing_empty_and_folder_sources(tmp_path):
    with pytest.raises(EncoderInputError, match="nowhere.pth.*does not exist"):
        open_weights(tmp_path / "nowhere.pth", EncoderInputError)
    (tmp_path / "empty.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty.safetensors.*empty .0 bytes"):
        open_weights(tmp_path / "empty.safetensors")
    with pytest.raises(EncoderInputError, match="is a folder.*weights file is expected.*empty.safetensors"):
        open_weights(tmp_path, EncoderInputError, allow_folder=False)


def test_reading_never_changes_the_files(tmp_path, scaled):
    fp8, scale = scaled
    files = {"a.safetensors": lambda p: save_file({f"{LAYER}.weight": fp8, f"{LAYER}.scale_weight": scale}, p),
             "b.pth": lambda p: torch.save({"x": torch.randn(3)}, p),
             "c.pth": lambda p: torch.save({"x": torch.randn(3)}, p, _use_new_zipfile_serialization=False)}
    for name, write in files.items():
        write(tmp_path / name)
        before = digest(tmp_path / name)
        weights = open_weights(tmp_path / name)
        dict(dequantized(weights, torch.bfloat16))
        assert digest(tmp_path / name) == before, name
