"""Speaker routing: L-RoPE labels, N >= 3 speakers in both modes, one speaker ignoring masks,
and the injectable attention backend."""
from __future__ import annotations

import pytest
import torch

from comfyui_multitalk.models import load_dit
from comfyui_multitalk.models.dit.attention import get_attention, sdpa_attention
from comfyui_multitalk.models.dit.routing import lrope_key_labels, lrope_query_labels, speaker_gates
from comfyui_multitalk.models.dit.tiny import random_dit_state_dict, tiny_dit_config
from comfyui_multitalk.models.errors import GenerationInputError

HEADS = dict(num_heads=2, text_len=16)


def make_model(layers=2, seed=5):
    return load_dit(random_dit_state_dict(tiny_dit_config(num_layers=layers), seed=seed), **HEADS)


def strip_masks(speakers: int, h: int = 8, w: int = 12) -> torch.Tensor:
    masks = torch.zeros(speakers + 1, h, w)
    edges = torch.linspace(0, w, speakers + 1).round().long()
    for s in range(speakers):
        masks[s, 1:-1, edges[s]:edges[s + 1]] = 1
    masks[-1] = (masks[:-1].sum(0) == 0).float()
    return masks


def inputs(speakers: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return dict(x=torch.randn(1, 16, 3, 8, 12, generator=g), t=torch.tensor([400.0]),
                context=torch.randn(1, 5, 16, generator=g), clip_fea=torch.randn(1, 257, 1280, generator=g),
                y=torch.randn(1, 20, 3, 8, 12, generator=g),
                audio=torch.randn(1, speakers, 9, 5, 12, 768, generator=g))


def forward(model, inp, **kwargs):
    with torch.no_grad():
        return model(inp["x"], inp["t"], inp["context"], inp["clip_fea"], inp["y"], audio=inp["audio"], **kwargs)


def test_two_speaker_labels_follow_the_trained_ranges():
    g = torch.Generator().manual_seed(0)
    attn_map = torch.rand(1, 3, 50, generator=g)
    labels = lrope_query_labels(attn_map, 2)[0]
    winner = attn_map[0].argmax(0)
    assert torch.all((labels[winner == 0] >= 0) & (labels[winner == 0] <= 4))
    assert torch.all((labels[winner == 1] >= 20) & (labels[winner == 1] <= 24))
    assert torch.all(labels[winner == 2] == 12)
    # each speaker's range is spanned exactly by its min..max map value (over all tokens)
    top = attn_map[0, 0].argmax()
    if winner[top] == 0:
        assert labels[top] == pytest.approx(4.0, abs=1e-5)
    assert lrope_key_labels(2, 3, torch.device("cpu")).tolist() == [2, 2, 2, 22, 22, 22]


def test_three_speaker_labels_extend_the_spacing():
    attn_map = torch.rand(2, 4, 30)
    labels = lrope_query_labels(attn_map, 3)
    winner = attn_map.argmax(1)
    assert torch.all((labels[winner == 2] >= 40) & (labels[winner == 2] <= 44))
    assert lrope_key_labels(3, 1, torch.device("cpu")).tolist() == [2, 22, 42]
    gates = speaker_gates(attn_map, 3)
    assert torch.equal(gates.sum(1), (winner < 3).float())


@pytest.mark.parametrize("routing", ["lrope", "masked"])
def test_three_speakers_run(routing):
    model, inp = make_model(), inputs(3)
    out = forward(model, inp, ref_masks=strip_masks(3), routing=routing)
    assert out.shape == (1, 16, 3, 8, 12) and torch.isfinite(out).all()
    changed = dict(inp, audio=inp["audio"].clone())
    changed["audio"][:, 2] = torch.randn_like(changed["audio"][:, 2])
    assert not torch.allclose(forward(model, changed, ref_masks=strip_masks(3), routing=routing), out)


def test_routing_modes_differ():
    model, inp = make_model(), inputs(3)
    lrope = forward(model, inp, ref_masks=strip_masks(3), routing="lrope")
    masked = forward(model, inp, ref_masks=strip_masks(3), routing="masked")
    assert not torch.allclose(lrope, masked)


def test_masked_routing_keeps_each_speaker_in_its_region():
    """One block: the audio attention comes after self-attention, and FFN and head act per token,
    so a speaker's audio can change only the tokens whose adaptive mask it wins."""
    model, inp = make_model(layers=1), inputs(3, seed=2)
    masks = strip_masks(3)
    base = forward(model, inp, ref_masks=masks, routing="masked")
    changed = dict(inp, audio=inp["audio"].clone())
    changed["audio"][:, 1] += 3 * torch.randn_like(changed["audio"][:, 1])
    diff = (forward(model, changed, ref_masks=masks, routing="masked") - base).abs()
    token_diff = diff.amax(dim=1).unflatten(-1, (6, 2)).amax(-1).unflatten(-2, (4, 2)).amax(-2)  # [1, 3, 4, 6]
    moved = token_diff[0].flatten() > 0
    assert 0 < moved.sum() < moved.numel()

    captured = {}
    block = model.blocks[0]
    original = block.self_attn.forward

    def spy(x, ctx):
        out, attn_map = original(x, ctx)
        captured["gates"] = speaker_gates(attn_map, 3)
        return out, attn_map

    block.self_attn.forward = spy
    forward(model, inp, ref_masks=masks, routing="masked")
    assert torch.equal(moved, captured["gates"][0, 1] > 0)


def test_one_speaker_ignores_masks():
    model, inp = make_model(), inputs(1)
    a = forward(model, inp, ref_masks=torch.ones(2, 8, 12))
    b = forward(model, inp, ref_masks=strip_masks(1))
    c = forward(model, inp)
    assert torch.equal(a, b) and torch.equal(a, c)


def test_audio_none_skips_the_audio_layers():
    model, inp = make_model(), inputs(1)
    with_audio = forward(model, inp)
    without = forward(model, dict(inp, audio=None))
    assert torch.isfinite(without).all() and not torch.allclose(with_audio, without)


@pytest.mark.parametrize("kwargs,message", [
    (dict(routing="lrope", ref_masks=strip_masks(1)), "ref_masks has 2 masks; 2 speakers need 3"),
    (dict(routing="lrope"), "2 speakers need ref_masks"),
    (dict(routing="nearest", ref_masks=strip_masks(2)), "Unknown routing 'nearest'"),
])
def test_routing_input_errors(kwargs, message):
    with pytest.raises(GenerationInputError, match=message):
        forward(make_model(), inputs(2), **kwargs)


def test_too_many_speakers_for_the_mode():
    with pytest.raises(GenerationInputError, match="7 speakers exceed the 6 that 'lrope'"):
        forward(make_model(), inputs(7), ref_masks=strip_masks(7), routing="lrope")


def test_wrong_audio_frame_count():
    inp = inputs(1)
    inp["audio"] = inp["audio"][:, :, :8]
    with pytest.raises(GenerationInputError, match=r"expected \[B, S, 9, 5"):
        forward(make_model(), inp)


def test_attention_is_injectable():
    model, inp = make_model(), inputs(2)
    reference = forward(model, inp, ref_masks=strip_masks(2))
    calls = []

    def counting(q, k, v):
        calls.append(q.shape)
        return sdpa_attention(q, k, v)

    model.attention = counting
    assert torch.equal(forward(model, inp, ref_masks=strip_masks(2)), reference)
    assert len(calls) == 2 * 4  # per block: self, text, image, audio


def test_attention_backend_errors():
    assert get_attention("auto") is sdpa_attention
    with pytest.raises(ValueError, match="Unknown attention backend 'fast'"):
        get_attention("fast")
