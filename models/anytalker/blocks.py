"""AnyTalker's transformer blocks: the Wan DiT block with its cross-attentions swapped."""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ..dit.block import DiTBlock
from ..dit.config import DiTConfig
from .attention import AnyTalkerContext, AudioFaceCrossAttention, FaceAudioCrossAttention


class AudioFaceBlock(DiTBlock):
    """1.3B block: self-attention -> text + image + per-identity audio-face cross-attention -> FFN."""

    def _cross_attention(self, cfg: DiTConfig) -> nn.Module:
        return AudioFaceCrossAttention(cfg.dim, cfg.num_heads, cfg.eps)


class LegacyFaceAudioBlock(DiTBlock):
    """14B block: self-attention -> text + image cross-attention -> face-audio cross-attention on
    norm_x(x) -> FFN (MultiTalk's block order and names, plus face keys/values)."""

    def _audio_attention(self, cfg: DiTConfig) -> nn.Module:
        return FaceAudioCrossAttention(cfg.dim, cfg.audio_token_dim, cfg.num_heads)

    def _condition(self, x: torch.Tensor, ctx: AnyTalkerContext, attn_map: Optional[torch.Tensor]) -> torch.Tensor:
        x = x + self.cross_attn(self.norm3(x), ctx)
        return x + self.audio_cross_attn(self.norm_x(x), ctx)
