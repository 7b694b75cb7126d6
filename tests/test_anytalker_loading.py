"""Loading AnyTalker checkpoints in their released layouts, config inference, and the family check.

The released files are `torch.save({"model": state_dict})` (.pth, FACTS.md §2); conversions are
safetensors, possibly with ComfyUI's `model.diffusion_model.` prefix. Full-size shapes and counts
come from ../shared/golden/anytalker_param_shapes.json (the official constructor at full size).
"""
from __future__ import annotations

import json
import math
import re

import pytest
import torch
from safetensors.torch import load_file, save_file

from comfyui_multitalk.models.anytalker import (AnyTalkerDiT, check_combination, detect_family,
                                                infer_anytalker_config, load_anytalker)
from comfyui_multitalk.models.errors import CheckpointError

AUDIO_KEY = re.compile(r"^(audio_proj\.|blocks\.\d+\.(norm_x|audio_cross_attn)\.)")


@pytest.fixture(scope="module")
def weights(golden_dir):
    return {v: load_file(str(golden_dir / f"anytalker_{v}_tiny_weights.safetensors")) for v in ("af", "legacy")}


@pytest.fixture(scope="module")
def case(golden_dir):
    cases = load_file(str(golden_dir / "anytalker_dit_cases.safetensors"))
    shared = lambda key: cases[f"shared.{key}"].float()  # noqa: E731
    inputs = dict(x=shared("x")[None], t=cases["two_ids.t"], context=[shared("context")], clip_fea=shared("clip_fea"),
                  y=cases["two_ids.y"][None], audio=shared("audio")[:2], faces=shared("face_clip")[:2, 0],
                  face_masks=cases["two_ids.face_mask"])
    return inputs, {v: cases[f"{v}.two_ids.output"] for v in ("af", "legacy")}


def _output(model, inputs):
    with torch.no_grad():
        return model(**inputs)[0]


@pytest.mark.parametrize("variant", ["af", "legacy"])
@pytest.mark.parametrize("wrapped", [True, False], ids=["released_model_dict", "plain_state_dict"])
def test_pth_as_released(tmp_path, weights, case, variant, wrapped):
    path = tmp_path / "anytalker.pth"
    torch.save({"model": weights[variant]} if wrapped else weights[variant], str(path))
    model = load_anytalker(str(path), dtype="fp32", num_heads=2, text_len=16)
    assert model.variant == variant
    assert (_output(model, case[0]) - case[1][variant]).abs().max().item() <= 2e-5


@pytest.mark.parametrize("variant", ["af", "legacy"])
def test_safetensors_conversion_with_prefix_and_metadata(tmp_path, weights, case, variant):
    path = tmp_path / "anytalker.safetensors"
    save_file({f"model.diffusion_model.{k}": v for k, v in weights[variant].items()}, str(path),
              metadata={"anytalker.num_heads": "2", "anytalker.text_len": "16"})
    model = load_anytalker(str(path), dtype="fp32")
    assert (model.config.num_heads, model.config.text_len) == (2, 16)
    assert (_output(model, case[0]) - case[1][variant]).abs().max().item() <= 2e-5


def test_dtype_keeps_the_file_or_casts(weights):
    kept = load_anytalker(weights["af"], num_heads=2, text_len=16)  # the golden file is fp16
    cast = load_anytalker(weights["af"], dtype="bf16", num_heads=2, text_len=16)
    assert kept.compute_dtype == torch.float16 and cast.compute_dtype == torch.bfloat16
    assert {p.dtype for p in cast.parameters()} == {torch.bfloat16}
    with pytest.raises(CheckpointError, match="dtype 'int8'.*choose fp32, bf16 or fp16"):
        load_anytalker(weights["af"], dtype="int8", num_heads=2, text_len=16)


def test_tiny_configs_match_the_golden_constructor_arguments(golden_dir, weights):
    configs = json.loads((golden_dir / "anytalker_configs.json").read_text())
    af = infer_anytalker_config(weights["af"], num_heads=2, text_len=16)
    emb = configs["af_tiny_audio_emb"]
    assert (af.variant, af.dit.dim, af.dit.ffn_dim, af.dit.num_layers, af.dit.freq_dim, af.dit.text_dim) == (
        "af", 32, 64, 2, 16, 16)
    assert (af.af_audio_window, af.af_audio_feature_dim, af.af_audio_intermediate_dim, af.af_audio_tokens) == (
        emb["seq_len"], emb["blocks"] * emb["channels"], emb["intermediate_dim"], emb["context_tokens"])
    legacy, spec = infer_anytalker_config(weights["legacy"], num_heads=2, text_len=16), configs["legacy_tiny"]
    assert (legacy.variant, legacy.dit.audio_window, legacy.dit.audio_intermediate_dim, legacy.dit.audio_token_dim,
            legacy.dit.audio_tokens, legacy.dit.vae_scale) == (
        "legacy", spec["audio_window"], spec["intermediate_dim"], spec["audio_output_dim"], spec["context_tokens"],
        spec["vae_scale"])


@pytest.mark.parametrize("name, family", [("1.3B a2v_af", "anytalker-1.3b"), ("14B a2v_af legacy", "anytalker-14b")])
def test_full_size_checkpoints_infer_and_build(golden_dir, name, family):
    """Meta tensors of the released shapes -> the inferred config builds exactly the official tensors."""
    spec = json.loads((golden_dir / "anytalker_param_shapes.json").read_text())[name]
    shapes = dict(spec["non_block_or_block0"])
    for key, shape in spec["non_block_or_block0"].items():
        if key.startswith("blocks.0."):
            shapes.update({f"blocks.{i}.{key[len('blocks.0.'):]}": shape for i in range(spec["config"]["num_layers"])})
    state = {k: torch.empty(s, device="meta") for k, s in shapes.items()}
    assert detect_family(state) == family
    config = infer_anytalker_config(state)
    assert (config.dit.num_heads, config.dit.num_layers, config.dit.dim) == (
        spec["config"]["num_heads"], spec["config"]["num_layers"], spec["config"]["dim"])
    with torch.device("meta"):
        model = AnyTalkerDiT(config)
    built = model.state_dict()
    assert len(built) == spec["num_tensors"]
    assert sum(math.prod(t.shape) for t in built.values()) == spec["num_params"]
    assert {k: list(v.shape) for k, v in built.items()} == {k: list(s) for k, s in shapes.items()}


def test_family_of_each_kind_of_file(golden_dir, weights):
    multitalk = load_file(str(golden_dir / "dit_tiny_weights.safetensors"))
    assert detect_family(weights["af"]) == "anytalker-1.3b"
    assert detect_family(weights["legacy"]) == "anytalker-14b"
    assert detect_family(multitalk) == "multitalk"
    assert detect_family({k: v for k, v in multitalk.items() if AUDIO_KEY.match(k)}) == "multitalk"
    assert detect_family({k: v for k, v in multitalk.items() if not AUDIO_KEY.match(k)}) == "wan"
    assert detect_family({"encoder.weight": torch.zeros(1)}) is None


def test_multitalk_audio_over_anytalker_is_refused(tmp_path, golden_dir, weights):
    audio = tmp_path / "multitalk.safetensors"
    multitalk = load_file(str(golden_dir / "dit_tiny_weights.safetensors"))
    save_file({k: v for k, v in multitalk.items() if AUDIO_KEY.match(k)}, str(audio))
    with pytest.raises(CheckpointError, match=r"multitalk\.safetensors' \(MultiTalk / InfiniteTalk audio layers\) "
                                              r"cannot be loaded over .*Load the AnyTalker checkpoint alone"):
        load_anytalker([weights["legacy"], str(audio)], num_heads=2, text_len=16)
    assert check_combination("wan", "multitalk") == "multitalk"
    assert check_combination("anytalker-1.3b", None) == "anytalker-1.3b"


def test_anytalker_as_the_audio_file_of_a_wan_base_is_refused(golden_dir, weights):
    base = {k: v for k, v in load_file(str(golden_dir / "dit_tiny_weights.safetensors")).items()
            if not AUDIO_KEY.match(k)}
    with pytest.raises(CheckpointError, match=r"'anytalker_14b\.pth' is an AnyTalker 14B .* not a MultiTalk/"
                                              r"InfiniteTalk audio file.*Load 'anytalker_14b\.pth' on its own"):
        check_combination(detect_family(base), detect_family(weights["legacy"]), "wan_i2v.safetensors",
                          "anytalker_14b.pth")


def test_a_multitalk_checkpoint_is_sent_to_the_multitalk_loader(golden_dir):
    with pytest.raises(CheckpointError, match="MultiTalk / InfiniteTalk audio layers, not an AnyTalker checkpoint"):
        load_anytalker(str(golden_dir / "dit_tiny_weights.safetensors"), num_heads=2, text_len=16)


def test_partial_or_broken_files_are_named(tmp_path, weights):
    partial = dict(weights["af"])
    partial.pop("blocks.1.cross_attn.k_face.weight")
    with pytest.raises(CheckpointError, match=r"missing: \['blocks\.1\.cross_attn\.k_face\.weight'\]"):
        load_anytalker(partial, num_heads=2, text_len=16)
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="broken.pth' is not a PyTorch checkpoint"):
        load_anytalker(str(broken))
    with pytest.raises(CheckpointError, match="does not exist"):
        load_anytalker(str(tmp_path / "missing.pth"))
