"""LoRAs on the DiT: every key format gives the LoRA's definition W + s * alpha/rank * up @ down,
merged or unmerged, stacked, with full .diff/.diff_b deltas; the input model never changes; layers
the model lacks are reported; a LoRA of another model is refused."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from comfyui_multitalk.models.errors import CheckpointError
from comfyui_multitalk.models.lora import apply_loras, read_lora
from comfyui_multitalk.models.lora.file import clear_cache
sys.path.insert(0, str(Path(__file__).parent))  # the shared helpers beside this file
from lora_helpers import expected_state, inputs, random_pairs, tiny_model, tiny_state, write_format

FORMATS = ("comfyui", "comfyui_full_prefix", "no_prefix", "kohya", "wan_fun", "peft", "peft_default")


@pytest.fixture(scope="module")
def state():
    return tiny_state()


@pytest.fixture(scope="module")
def base(state):
    return tiny_model(state)


def _run(model, batch=1):
    args, kwargs = inputs(batch)
    with torch.no_grad():
        return model(*args, **kwargs)


def _assert_weights(patched, expected: dict, atol: float = 1e-6) -> None:
    got = patched.state_dict()
    for key, value in expected.items():
        assert torch.allclose(got[key].float(), value.float(), atol=atol, rtol=0), key


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_merges_to_the_definition(state, base, fmt):
    pairs = random_pairs(state)
    alpha = None if fmt == "peft" else 2.0
    patched, (report,) = apply_loras(base, [(read_lora(write_format(pairs, fmt, alpha)), 0.8)], "merged")
    assert sorted(report.patched) == sorted(f"{layer}.weight" for layer in pairs)
    assert not report.missing and not report.mismatched
    _assert_weights(patched, expected_state(state, pairs, 0.8, alpha))


def test_merged_and_unmerged_forward_equal_the_definition(state, base):
    first, second = random_pairs(state, seed=5), random_pairs(state, seed=6, rank=2)
    loras = [(read_lora(write_format(first, "comfyui", 2.0)), 0.7), (read_lora(write_format(second, "kohya", 8.0)), -0.4)]
    expected = expected_state(expected_state(state, first, 0.7, 2.0), second, -0.4, 8.0)
    reference = _run(tiny_model(expected))
    merged, _ = apply_loras(base, loras, "merged")
    unmerged, _ = apply_loras(base, loras, "unmerged")
    assert torch.allclose(_run(merged), reference, atol=2e-5)
    assert torch.allclose(_run(unmerged), reference, atol=2e-5)
    # unmerged keeps the base's weight tensors and adds the LoRAs' stacked low-rank terms at compute time
    layer = unmerged.blocks[0].self_attn.q
    assert layer.weight is base.blocks[0].self_attn.q.weight and layer.lora_down.shape == (4 + 2, 32)  # ranks stacked
    assert torch.allclose(layer.effective_weight(torch.float32), expected["blocks.0.self_attn.q.weight"], atol=1e-6)


def test_the_input_model_is_never_modified(state, base):
    before = _run(base)
    weights = {k: v.clone() for k, v in base.state_dict().items()}
    lora = read_lora(write_format(random_pairs(state), "comfyui", 4.0))
    for mode in ("merged", "unmerged"):
        patched, _ = apply_loras(base, [(lora, 1.0)], mode)
        assert not torch.allclose(_run(patched), before, atol=1e-3)
        assert torch.equal(_run(base), before)  # a second sampler with the unpatched model
    assert all(torch.equal(base.state_dict()[k], v) for k, v in weights.items())
    assert type(base.blocks[0].self_attn.q) is torch.nn.Linear


def test_full_deltas_on_norms_biases_modulation_and_patch_embedding(state, base):
    """lightx2v / FusioniX style: `.diff` for norms, modulation and the conv, `.diff_b` for biases."""
    g = torch.Generator().manual_seed(9)
    deltas = {"blocks.0.norm3.weight": None, "blocks.1.self_attn.norm_q.weight": None,
              "blocks.0.modulation": (6, 32), "patch_embedding.weight": None, "head.modulation": (2, 32)}
    lora, expected = {}, dict(state)
    for key, stored in deltas.items():
        shape = stored or state[key].shape  # modulation stored as [6, dim], as some files do
        delta = 0.1 * torch.randn(shape, generator=g)
        layer = key[: -len(".weight")] if key.endswith(".weight") else key
        lora[f"diffusion_model.{layer}.diff"] = delta
        expected[key] = state[key] + 0.5 * delta.reshape(state[key].shape)
    for layer in ("blocks.1.ffn.2", "time_projection.1"):
        delta = 0.1 * torch.randn(state[f"{layer}.bias"].shape, generator=g)
        lora[f"diffusion_model.{layer}.diff_b"] = delta
        expected[f"{layer}.bias"] = state[f"{layer}.bias"] + 0.5 * delta
    for mode in ("merged", "unmerged"):
        patched, (report,) = apply_loras(base, [(read_lora(lora), 0.5)], mode)
        assert len(report.patched) == 7
        _assert_weights(patched, expected) if mode == "merged" else None
        assert torch.allclose(_run(patched), _run(tiny_model(expected)), atol=2e-5)


def test_diffusers_norm2_is_the_released_norm3(state, base):
    delta = torch.full_like(state["blocks.0.norm3.weight"], 0.25)
    lora = {"transformer.blocks.0.norm2.diff": delta, "transformer.blocks.0.attn1.to_q.lora_A.weight": torch.zeros(1, 32),
            "transformer.blocks.0.attn1.to_q.lora_B.weight": torch.zeros(32, 1)}
    patched, (report,) = apply_loras(base, [(read_lora(lora), 1.0)], "merged")
    assert "blocks.0.norm3.weight" in report.patched
    assert torch.allclose(patched.blocks[0].norm3.weight, state["blocks.0.norm3.weight"] + 0.25)


def test_layers_the_model_lacks_are_reported_not_fatal(state, base):
    """A T2V / 40-block LoRA on a smaller I2V model: the layers that fit are applied, the rest listed."""
    pairs = random_pairs(state, layers=("blocks.0.self_attn.q",))
    lora = write_format(pairs, "comfyui", None)
    lora["diffusion_model.blocks.7.self_attn.q.lora_up.weight"] = torch.zeros(32, 4)
    lora["diffusion_model.blocks.7.self_attn.q.lora_down.weight"] = torch.zeros(4, 32)
    lora["diffusion_model.patch_embedding.diff"] = torch.zeros(32, 16, 1, 2, 2)  # T2V: 16 input channels
    lora["diffusion_model.blocks.0.self_attn.q.dora_scale"] = torch.ones(32, 1)
    patched, (report,) = apply_loras(base, [(read_lora(lora), 1.0)], "merged")
    assert report.patched == ["blocks.0.self_attn.q.weight"]
    assert report.missing == ["blocks.7.self_attn.q"] and len(report.mismatched) == 1
    assert report.unsupported == ["diffusion_model.blocks.0.self_attn.q.dora_scale"]
    text = "\n".join(report.lines())
    assert "1 weights patched" in text and "T2V LoRA" in text and "patch_embedding.weight" in text
    _assert_weights(patched, expected_state(state, pairs, 1.0, None))


def test_a_lora_of_another_model_size_is_refused(base):
    lora = {"diffusion_model.blocks.0.self_attn.q.lora_up.weight": torch.zeros(1536, 4),
            "diffusion_model.blocks.0.self_attn.q.lora_down.weight": torch.zeros(4, 1536)}
    with pytest.raises(CheckpointError, match="Wan 1.3B"):
        apply_loras(base, [(read_lora(lora), 1.0)], "merged")
    with pytest.raises(CheckpointError, match="no LoRA weights"):
        read_lora({"blocks.0.self_attn.q.weight": torch.zeros(32, 32)})
    with pytest.raises(CheckpointError, match="without its partner"):
        read_lora({"blocks.0.self_attn.q.lora_up.weight": torch.zeros(32, 4)})


def test_files_are_read_once_per_version(tmp_path, state):
    clear_cache()
    path = tmp_path / "style.safetensors"
    save_file(write_format(random_pairs(state), "comfyui", 1.0), str(path))
    first = read_lora(str(path))
    assert read_lora(str(path)) is first  # a new strength re-applies without reading the file
    save_file(write_format(random_pairs(state, seed=8), "comfyui", 1.0), str(path))
    assert read_lora(str(path)) is not first
