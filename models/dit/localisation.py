"""Adaptive speaker localisation: how much each video token attends to each speaker's region
of the reference frame (MultiTalk's reference-attention map), in bounded memory.

For every video token, the self-attention probabilities over the reference (first latent
frame) tokens are averaged over the reference tokens inside each class mask (speakers, then
background), then averaged over heads. The official code materialises tokens x ref-tokens x
heads at once (about 10 GB per block for a 14B 81-frame 480p window); here queries are taken
in chunks, so the working set is bounded by `chunk_elements` whatever the video length.
"""
from __future__ import annotations

import torch

# Elements of one chunk's [B, heads, queries, ref] probability block (fp32): 2**24 = 64 MiB.
DEFAULT_CHUNK_ELEMENTS = 2**24


def heads_for_map(num_heads: int) -> int:
    """Heads the official map averages: two equal halves of the heads (an odd last one is
    left out); a single head is used as is."""
    return num_heads if num_heads < 2 else 2 * (num_heads // 2)


@torch.no_grad()
def reference_attention_map(q: torch.Tensor, k: torch.Tensor, class_masks: torch.Tensor,
                            ref_tokens: int, chunk_elements: int = DEFAULT_CHUNK_ELEMENTS) -> torch.Tensor:
    """Localisation map [B, C, L] (fp32), carrying no gradient: the official model computes it
    under no_grad, so training gradients do not flow through the speaker labels it yields (and
    autograd keeps none of its chunks).

    q, k: [B, H, L, D] self-attention queries/keys after RoPE; the first `ref_tokens` keys are
    the reference frame. class_masks: [B or 1, C, ref_tokens], 1 inside each class region.
    """
    batch, heads, length, head_dim = q.shape
    used = heads_for_map(heads)
    q, ref_k = q[:, :used], k[:, :used, :ref_tokens].float()  # ref_k [B, Hu, R, D]
    masks = class_masks.float()
    weights = masks / masks.sum(-1, keepdim=True).clamp_min(1.0)  # mean over each region
    weights = weights.expand(batch, -1, -1).transpose(1, 2)  # [B, R, C]
    scale = head_dim**-0.5
    step = max(1, chunk_elements // max(1, batch * used * ref_tokens))
    out = q.new_empty((batch, length, masks.shape[1]), dtype=torch.float32)
    for start in range(0, length, step):
        q_chunk = q[:, :, start:start + step].float() * scale  # [B, Hu, c, D]
        probs = torch.matmul(q_chunk, ref_k.transpose(-1, -2)).softmax(dim=-1)  # [B, Hu, c, R]
        per_class = torch.matmul(probs, weights.unsqueeze(1))  # [B, Hu, c, C]
        out[:, start:start + step] = per_class.mean(dim=1)
    return out.transpose(1, 2)  # [B, C, L]


def map_working_bytes(batch: int, heads: int, ref_tokens: int, length: int,
                      chunk_elements: int = DEFAULT_CHUNK_ELEMENTS) -> int:
    """Bytes of the largest temporaries of one map computation (logits + probabilities)."""
    used = heads_for_map(heads)
    step = max(1, chunk_elements // max(1, batch * used * ref_tokens))
    return 2 * 4 * batch * used * min(step, length) * ref_tokens
