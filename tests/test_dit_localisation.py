"""The adaptive localisation map: the chunked computation equals a direct one, and its working
memory stays bounded for a 14B, 81-frame, 480p window."""
from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from comfyui_multitalk.models.dit.localisation import map_working_bytes, reference_attention_map


def direct_map(q, k, masks, ref_tokens):
    """Straight from the method's definition: full softmax over the reference tokens per head,
    per class the mean over the class's reference tokens, then the mean over two head halves."""
    batch, heads, length, dim = q.shape
    half = heads // 2 if heads > 1 else 1
    groups = [range(0, half), range(half, 2 * half)] if heads > 1 else [range(0, 1)]
    out = torch.zeros(batch, masks.shape[1], length, dtype=torch.float64)
    for group in groups:
        qg, kg = q[:, list(group)].double(), k[:, list(group), :ref_tokens].double()
        probs = (qg @ kg.transpose(-1, -2) / dim**0.5).softmax(-1)  # [B, h, L, R]
        for c in range(masks.shape[1]):
            m = masks[0, c].double()
            out[:, c] += ((probs * m).sum(-1) / m.sum()).mean(1) / len(groups)
    return out


@pytest.mark.parametrize("heads", [2, 3, 4])
@pytest.mark.parametrize("chunk_elements", [1, 97, 10**9])
def test_chunked_map_equals_direct(heads, chunk_elements):
    g = torch.Generator().manual_seed(heads)
    batch, length, dim, ref = 2, 60, 8, 12
    q = torch.randn(batch, heads, length, dim, generator=g)
    k = torch.randn(batch, heads, length, dim, generator=g)
    masks = torch.zeros(1, 3, ref)
    masks[0, 0, :4], masks[0, 1, 4:9], masks[0, 2, 9:] = 1, 1, 1
    got = reference_attention_map(q, k, masks, ref, chunk_elements=chunk_elements)
    assert got.shape == (batch, 3, length)
    assert torch.allclose(got.double(), direct_map(q, k, masks, ref), atol=1e-6)


class LargestTensor(TorchDispatchMode):
    """Records the largest tensor any op allocates (views excluded; meta tensors: shapes only)."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if any(r.alias_info is not None for r in func._schema.returns):
            return out  # a view of an existing tensor allocates nothing
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel() * t.element_size())
        return out


def test_working_memory_is_bounded_for_a_14b_window():
    # 14B (40 heads x 128), 81 frames -> 21 latent frames, 480p -> 30 x 52 tokens per frame.
    heads, dim, per_frame, length = 40, 128, 30 * 52, 21 * 30 * 52
    q = torch.empty(1, heads, length, dim, device="meta", dtype=torch.bfloat16)
    k = torch.empty(1, heads, length, dim, device="meta", dtype=torch.bfloat16)
    masks = torch.empty(1, 3, per_frame, device="meta")
    with LargestTensor() as probe:
        out = reference_attention_map(q, k, masks, per_frame)
    assert out.shape == (1, 3, length)
    whole = length * per_frame * heads * 4  # the official's fp32 tokens x ref x heads block: ~8 GB
    assert whole > 8e9
    bound = map_working_bytes(1, heads, per_frame, length)
    assert bound <= 160 * 2**20  # stated bound: two 64 MiB blocks (logits, probabilities) + slack
    assert probe.largest <= bound / 2 + length * 3 * 4  # one block at a time, or the output itself


def test_map_carries_no_gradient():
    g = torch.Generator().manual_seed(0)
    q = torch.randn(1, 2, 24, 8, generator=g, requires_grad=True)
    k = torch.randn(1, 2, 24, 8, generator=g, requires_grad=True)
    masks = torch.zeros(1, 3, 6)
    masks[0, 0, :2], masks[0, 1, 2:4], masks[0, 2, 4:] = 1, 1, 1
    assert not reference_attention_map(q, k, masks, 6).requires_grad


def test_adapter_gradients_do_not_flow_through_the_speaker_labels(monkeypatch):
    """As the official model (map under no_grad): a training step's adapter gradients equal those
    of a run where the map's inputs are cut from the graph by hand."""
    from comfyui_multitalk.models import load_dit
    from comfyui_multitalk.models.dit import block
    from comfyui_multitalk.models.dit.tiny import random_dit_state_dict, tiny_dit_config

    model = load_dit(random_dit_state_dict(tiny_dit_config(), seed=4), num_heads=2, text_len=16)
    audio_params = {n: p for n, p in model.named_parameters() if "audio" in n or "norm_x" in n}
    for p in audio_params.values():
        p.requires_grad_(True)
    g = torch.Generator().manual_seed(5)
    masks = torch.zeros(3, 8, 12)
    masks[0, :, :6], masks[1, :, 6:] = 1, 1
    args = (torch.randn(1, 16, 3, 8, 12, generator=g), torch.tensor([700.0]), torch.randn(1, 7, 16, generator=g),
            torch.randn(1, 257, 1280, generator=g), torch.randn(1, 20, 3, 8, 12, generator=g))
    audio = torch.randn(1, 2, 9, 5, 12, 768, generator=g)

    def gradients():
        model.zero_grad()
        model(*args, audio=audio, ref_masks=masks).square().mean().backward()
        return {n: p.grad.clone() for n, p in audio_params.items()}

    ours = gradients()
    original = block.reference_attention_map
    monkeypatch.setattr(block, "reference_attention_map",
                        lambda q, k, *rest: original(q.detach(), k.detach(), *rest))
    detached = gradients()
    for name in ours:
        assert torch.allclose(ours[name], detached[name], rtol=1e-5, atol=1e-8), name
