"""AnyTalker's two ways of binding each audio track to a face (FACTS.md §5, §6).

1.3B (`a2v_af`): the text cross-attention gains, per identity, one attention over
[face tokens; audio tokens] (keys k_face/k_audio with RMS norms), gated by that identity's
token mask and summed with the text and image outputs before the shared `o`.
14B (legacy): MultiTalk's audio cross-attention (per latent frame, no norms) with the keys
[face tokens; that frame's audio tokens], gated per identity, summed, then `proj` once.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from ..dit.audio_attention import AudioCrossAttention
from ..dit.block import BlockContext, ImageTextCrossAttention, _heads, _merge_heads
from ..dit.layers import RMSNorm
from .temporal import grouped_face_audio_attention, is_uniform, masked_face_audio_attention


@dataclass
class IdentityTokens:
    """Per-identity conditioning, built once per forward and shared by all blocks."""

    audio: list[torch.Tensor]  # 1.3B: [B, F*N, dim] (frame-major); 14B: [B, T, N, token_dim]
    faces: list[torch.Tensor]  # [B, 257, dim]: audio_ref_emb of each face crop's CLIP features
    masks: list[torch.Tensor]  # [B, L, 1]: each identity's soft token mask
    audio_frames: int  # F, video frames the audio covers
    tokens_per_frame: int  # N

    @property
    def count(self) -> int:
        return len(self.audio)


@dataclass
class AnyTalkerContext(BlockContext):
    identities: Optional[IdentityTokens] = None
    grouped_attention: bool = True  # per-latent-frame attention when the audio length allows it


class AudioFaceCrossAttention(ImageTextCrossAttention):
    """Wan's text + image cross-attention plus one audio-face attention per identity (1.3B)."""

    def __init__(self, dim: int, num_heads: int, eps: float):
        super().__init__(dim, num_heads, eps)
        self.k_audio, self.v_audio = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.norm_k_audio = RMSNorm(dim, eps)
        self.k_face, self.v_face = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.norm_k_face = RMSNorm(dim, eps)

    def forward(self, x: torch.Tensor, ctx: AnyTalkerContext) -> torch.Tensor:
        q = self.query(x)
        out = self.attend_text_image(q, ctx)  # [B, L, dim]
        ids = ctx.identities
        if ids is not None:
            for audio, face, mask in zip(ids.audio, ids.faces, ids.masks):
                out = out + _merge_heads(self._identity(q, audio, face, ctx)) * mask
        return self.o(out)

    def _identity(self, q: torch.Tensor, audio: torch.Tensor, face: torch.Tensor,
                  ctx: AnyTalkerContext) -> torch.Tensor:
        heads, ids = self.num_heads, ctx.identities
        keys = (_heads(self.norm_k_face(self.k_face(face)), heads),
                _heads(self.norm_k_audio(self.k_audio(audio)), heads))
        values = (_heads(self.v_face(face), heads), _heads(self.v_audio(audio), heads))
        if ctx.grouped_attention and is_uniform(ctx.grid[0], ids.audio_frames):
            return grouped_face_audio_attention(q, keys, values, ctx.grid, ids.tokens_per_frame, ctx.attention)
        return masked_face_audio_attention(q, keys, values, ctx.grid, ids.audio_frames, ids.tokens_per_frame)


class FaceAudioCrossAttention(AudioCrossAttention):
    """MultiTalk's per-latent-frame audio cross-attention with face keys/values (14B)."""

    def __init__(self, dim: int, token_dim: int, num_heads: int):
        super().__init__(dim, token_dim, num_heads)
        self.k_face, self.v_face = nn.Linear(dim, dim), nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, ctx: AnyTalkerContext) -> torch.Tensor:  # type: ignore[override]
        """x [B, L, dim] (norm_x applied) -> [B, L, dim]; zeros without identities, as the official."""
        ids = ctx.identities
        if ids is None or ids.count == 0:
            return torch.zeros_like(x)
        frames = ctx.grid[0]
        q = self._queries(x, frames)  # [B*T, H, hw, D]
        out = None
        for audio, face, mask in zip(ids.audio, ids.faces, ids.masks):
            k_audio, v_audio = self._keys_values(audio)  # [B*T, H, N, D]
            k_face = self._every_frame(self.k_face(face), frames)  # [B*T, H, 257, D]
            v_face = self._every_frame(self.v_face(face), frames)
            attended = ctx.attention(q, torch.cat([k_face, k_audio], dim=2), torch.cat([v_face, v_audio], dim=2))
            gated = attended.transpose(1, 2).flatten(2).unflatten(0, (x.shape[0], -1)).flatten(1, 2) * mask
            out = gated if out is None else out + gated
        return self.proj(out)

    def _every_frame(self, tokens: torch.Tensor, frames: int) -> torch.Tensor:
        # [B, 257, dim] -> [B*T, H, 257, D]: the same face tokens for every latent frame
        return _heads(tokens, self.num_heads).repeat_interleave(frames, dim=0)
