"""Equivalence with the official MultiTalk implementation on its golden numbers.

The golden files (../shared/golden, see its README) hold a tiny seeded model in the official
key layout, inputs and the outputs the official code computed in fp32 on a CPU. To regenerate
them: build the official WanModel from ../shared/golden/configs.json "dit_tiny" through
../shared/tools/official_multitalk_cpu.py, load the weights, and run the two cases' inputs.
"""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from comfyui_multitalk.models import load_dit

CASES = ("one_speaker", "two_speakers")


@pytest.fixture(scope="module")
def golden(golden_dir):
    config = json.loads((golden_dir / "configs.json").read_text())["dit_tiny"]
    weights = load_file(str(golden_dir / "dit_tiny_weights.safetensors"))
    model = load_dit(weights, dtype="fp32", num_heads=config["num_heads"], text_len=config["text_len"])
    cases = load_file(str(golden_dir / "dit_tiny_cases.safetensors"))
    return model, cases


def _run(model, cases, case, **kwargs):
    get = lambda key: cases[f"{case}.{key}"]  # noqa: E731
    with torch.no_grad():
        return model(get("x")[None], get("t"), get("context")[None], get("clip_fea"), get("y")[None],
                     audio=get("audio")[None], ref_masks=get("ref_target_masks"), **kwargs)[0]


@pytest.mark.parametrize("case", CASES)
def test_matches_official_output(golden, case):
    model, cases = golden
    out = _run(model, cases, case)
    expected = cases[f"{case}.output"]
    assert out.shape == expected.shape
    assert (out - expected).abs().max().item() <= 2e-5


def test_batched_guidance_passes_equal_separate_calls(golden):
    """cond / no-text / no-audio (one zero speaker) in one batch give the three separate outputs."""
    model, cases = golden
    get = lambda key: cases[f"two_speakers.{key}"]  # noqa: E731
    audio, masks = get("audio"), get("ref_target_masks")
    negative = torch.randn_like(get("context")[:5])
    contexts = [get("context"), negative, negative]
    silent = torch.zeros_like(audio[:1])
    with torch.no_grad():
        separate = [
            model(get("x")[None], get("t"), [contexts[0]], get("clip_fea"), get("y")[None], audio[None], masks),
            model(get("x")[None], get("t"), [contexts[1]], get("clip_fea"), get("y")[None], audio[None], masks),
            model(get("x")[None], get("t"), [contexts[2]], get("clip_fea"), get("y")[None], silent[None], masks),
        ]
        padded_silent = torch.cat([silent, torch.zeros_like(silent)])  # speaker 0 carries the zeros
        batched = model(get("x")[None].expand(3, -1, -1, -1, -1), get("t").expand(3), contexts, get("clip_fea"),
                        get("y")[None], torch.stack([audio, audio, padded_silent]), masks,
                        active_speakers=[2, 2, 1])
    for i, single in enumerate(separate):
        assert (batched[i] - single[0]).abs().max().item() <= 1e-5
