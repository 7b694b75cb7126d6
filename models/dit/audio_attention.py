"""Audio cross-attention with speaker routing.

Per latent frame, the frame's h*w video tokens attend to that frame's audio tokens. One
speaker: plain attention. Several speakers: routed by the adaptive localisation map, either
with L-RoPE (queries rotated to their speaker's label range, each speaker's keys to its range
centre: the paper's method) or by masked per-speaker attention (each speaker attended alone,
gated by its hard adaptive mask, summed).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from .attention import AttentionFn
from .rope import label_rope_table, rotate_pairs
from .routing import lrope_key_labels, lrope_query_labels, speaker_gates


@dataclass
class AudioRouting:
    """How one forward routes audio: which batch items are multi-speaker and in which mode."""

    num_speakers: int  # speakers in the audio tensor
    tokens_per_speaker: int
    mode: str  # "lrope" | "masked"
    multi_items: Optional[torch.Tensor]  # [Bm] batch indices routed across speakers (None: none)
    single_items: Optional[torch.Tensor]  # [Bs] batch indices using speaker 0 only (None: none)


def _heads(t: torch.Tensor, heads: int) -> torch.Tensor:
    # [N, L, H*D] -> [N, H, L, D]
    return t.unflatten(-1, (heads, -1)).transpose(1, 2)


class AudioCrossAttention(nn.Module):
    def __init__(self, dim: int, token_dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.q_linear = nn.Linear(dim, dim)
        self.kv_linear = nn.Linear(token_dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, audio_tokens: torch.Tensor, frames: int, routing: AudioRouting,
                attn_map: Optional[torch.Tensor], attention: AttentionFn) -> torch.Tensor:
        """x [B, L, dim] (normed video tokens); audio_tokens [B, T, S*N, token_dim];
        attn_map [Bm, S+1, L] for the multi-speaker items. Returns [B, L, dim]."""
        if routing.multi_items is None:
            return self._single(x, audio_tokens, frames, routing, attention)
        if routing.single_items is None:
            return self._multi(x, audio_tokens, frames, routing, attn_map, attention)
        out = torch.empty_like(x)
        single, multi = routing.single_items, routing.multi_items
        out[single] = self._single(x[single], audio_tokens[single], frames, routing, attention)
        out[multi] = self._multi(x[multi], audio_tokens[multi], frames, routing, attn_map, attention)
        return out

    def _queries(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        # [B, T*hw, dim] -> [B*T, H, hw, D]
        return _heads(self.q_linear(x).flatten(0, 1).unflatten(0, (-1, x.shape[1] // frames)), self.num_heads)

    def _keys_values(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # [B, T, M, token_dim] -> k, v [B*T, H, M, D]
        kv = self.kv_linear(tokens.flatten(0, 1))
        k, v = kv.chunk(2, dim=-1)
        return _heads(k, self.num_heads), _heads(v, self.num_heads)

    def _output(self, attended: torch.Tensor, batch: int) -> torch.Tensor:
        # [B*T, H, hw, D] -> [B, T*hw, dim]
        return self.proj(attended.transpose(1, 2).flatten(2)).unflatten(0, (batch, -1)).flatten(1, 2)

    def _single(self, x, audio_tokens, frames, routing, attention):
        k, v = self._keys_values(audio_tokens[:, :, : routing.tokens_per_speaker])
        return self._output(attention(self._queries(x, frames), k, v), x.shape[0])

    def _multi(self, x, audio_tokens, frames, routing, attn_map, attention):
        batch, speakers = x.shape[0], routing.num_speakers
        q = self._queries(x, frames)
        k, v = self._keys_values(audio_tokens)
        if routing.mode == "masked":
            gates = speaker_gates(attn_map, speakers).to(x.dtype)  # [B, S, L]
            out = torch.zeros_like(x)
            n = routing.tokens_per_speaker
            for s in range(speakers):  # a handful of speakers, each a batched attention
                attended = attention(q, k[:, :, s * n:(s + 1) * n], v[:, :, s * n:(s + 1) * n])
                out = out + self._output(attended, batch) * gates[:, s, :, None]
            return out
        q_cos, q_sin = label_rope_table(lrope_query_labels(attn_map, speakers), self.head_dim)  # [B, L, D/2]
        q_cos, q_sin = (t.unflatten(1, (frames, -1)).flatten(0, 1).unsqueeze(1) for t in (q_cos, q_sin))
        k_cos, k_sin = label_rope_table(lrope_key_labels(speakers, routing.tokens_per_speaker, x.device),
                                        self.head_dim)  # [S*N, D/2]
        q = rotate_pairs(q, q_cos, q_sin)
        k = rotate_pairs(k, k_cos, k_sin)
        return self._output(attention(q, k, v), batch)
