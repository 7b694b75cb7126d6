"""One Wan2.1-I2V transformer block with MultiTalk's audio cross-attention.

Order: adaLN-modulated self-attention (3-D RoPE) -> text + CLIP-image cross-attention ->
audio cross-attention on norm_x(x) as a residual -> modulated FFN. Modulation and norms in fp32.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from .attention import AttentionFn
from .audio_attention import AudioCrossAttention, AudioRouting
from .config import CLIP_TOKENS, DiTConfig
from .layers import FP32LayerNorm, RMSNorm, gelu_tanh_mlp
from .localisation import reference_attention_map
from .rope import rotate_pairs


@dataclass
class BlockContext:
    """Everything a block needs besides its input, built once per forward."""

    grid: tuple[int, int, int]  # token grid (t, h, w)
    rope_cos: torch.Tensor  # [L, D/2] fp32
    rope_sin: torch.Tensor
    context: torch.Tensor  # [B, 257 + text_len, dim]: CLIP tokens first, then text
    attention: AttentionFn
    audio_tokens: Optional[torch.Tensor] = None  # [B, T, S*N, token_dim]
    routing: Optional[AudioRouting] = None
    class_masks: Optional[torch.Tensor] = None  # [Bm or 1, S+1, h*w] for the routed items
    map_chunk_elements: int = 2**24


def _heads(t: torch.Tensor, heads: int) -> torch.Tensor:
    # [B, L, H*D] -> [B, H, L, D]
    return t.unflatten(-1, (heads, -1)).transpose(1, 2)


def _merge_heads(t: torch.Tensor) -> torch.Tensor:
    # [B, H, L, D] -> [B, L, H*D]
    return t.transpose(1, 2).flatten(2)


class SelfAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int, eps: float):
        super().__init__()
        self.num_heads = num_heads
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
        self.norm_q, self.norm_k = RMSNorm(dim, eps), RMSNorm(dim, eps)

    def forward(self, x: torch.Tensor, ctx: BlockContext) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """x [B, L, dim] -> ([B, L, dim], localisation map [Bm, S+1, L] or None)."""
        q = rotate_pairs(_heads(self.norm_q(self.q(x)), self.num_heads), ctx.rope_cos, ctx.rope_sin)
        k = rotate_pairs(_heads(self.norm_k(self.k(x)), self.num_heads), ctx.rope_cos, ctx.rope_sin)
        v = _heads(self.v(x), self.num_heads)
        out = self.o(_merge_heads(ctx.attention(q, k, v)))
        return out, self._localisation(q, k, ctx)

    @staticmethod
    def _localisation(q: torch.Tensor, k: torch.Tensor, ctx: BlockContext) -> Optional[torch.Tensor]:
        routing = ctx.routing
        if routing is None or routing.multi_items is None:
            return None
        if routing.single_items is not None:
            q, k = q[routing.multi_items], k[routing.multi_items]
        _, h, w = ctx.grid
        return reference_attention_map(q, k, ctx.class_masks, h * w, ctx.map_chunk_elements)


class ImageTextCrossAttention(nn.Module):
    """Cross-attention to text tokens and (separately projected) CLIP image tokens, summed."""

    def __init__(self, dim: int, num_heads: int, eps: float):
        super().__init__()
        self.num_heads = num_heads
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
        self.k_img, self.v_img = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.norm_q, self.norm_k, self.norm_k_img = (RMSNorm(dim, eps) for _ in range(3))

    def forward(self, x: torch.Tensor, ctx: BlockContext) -> torch.Tensor:
        return self.o(self.attend_text_image(self.query(x), ctx))

    def query(self, x: torch.Tensor) -> torch.Tensor:
        """[B, L, dim] -> normed queries [B, H, L, D] (shared by every context this block attends)."""
        return _heads(self.norm_q(self.q(x)), self.num_heads)

    def attend_text_image(self, q: torch.Tensor, ctx: BlockContext) -> torch.Tensor:
        """Text and CLIP-image attention outputs summed, before `o`: [B, L, dim]."""
        image, text = ctx.context[:, :CLIP_TOKENS], ctx.context[:, CLIP_TOKENS:]
        text_out = ctx.attention(q, _heads(self.norm_k(self.k(text)), self.num_heads),
                                 _heads(self.v(text), self.num_heads))
        image_out = ctx.attention(q, _heads(self.norm_k_img(self.k_img(image)), self.num_heads),
                                  _heads(self.v_img(image), self.num_heads))
        return _merge_heads(text_out) + _merge_heads(image_out)


class DiTBlock(nn.Module):
    def __init__(self, cfg: DiTConfig):
        super().__init__()
        dim, eps = cfg.dim, cfg.eps
        self.norm1 = FP32LayerNorm(dim, eps)
        self.self_attn = SelfAttention(dim, cfg.num_heads, eps)
        self.norm3 = FP32LayerNorm(dim, eps, elementwise_affine=True) if cfg.cross_attn_norm else nn.Identity()
        self.cross_attn = self._cross_attention(cfg)
        self.norm2 = FP32LayerNorm(dim, eps)
        self.ffn = gelu_tanh_mlp(dim, cfg.ffn_dim, dim)
        self.modulation = nn.Parameter(torch.randn(1, 6, dim) / dim**0.5)
        if cfg.has_audio:
            self.audio_cross_attn = self._audio_attention(cfg)
            self.norm_x = FP32LayerNorm(dim, eps, elementwise_affine=True) if cfg.norm_input_visual else nn.Identity()

    # Subclasses (other model families on the same backbone) swap these two attentions.
    def _cross_attention(self, cfg: DiTConfig) -> nn.Module:
        return ImageTextCrossAttention(cfg.dim, cfg.num_heads, cfg.eps)

    def _audio_attention(self, cfg: DiTConfig) -> nn.Module:
        return AudioCrossAttention(cfg.dim, cfg.audio_token_dim, cfg.num_heads)

    def forward(self, x: torch.Tensor, e: torch.Tensor, ctx: BlockContext) -> torch.Tensor:
        """x [B, L, dim] in the compute dtype; e [B, 6, dim] fp32 time modulation."""
        dtype = x.dtype
        shift1, scale1, gate1, shift2, scale2, gate2 = (self.modulation.float() + e).chunk(6, dim=1)
        y, attn_map = self.self_attn((self.norm1(x).float() * (1 + scale1) + shift1).to(dtype), ctx)
        x = (x.float() + y.float() * gate1).to(dtype)
        x = self._condition(x, ctx, attn_map)
        y = self.ffn((self.norm2(x).float() * (1 + scale2) + shift2).to(dtype))
        return (x.float() + y.float() * gate2).to(dtype)

    def _condition(self, x: torch.Tensor, ctx: BlockContext, attn_map: Optional[torch.Tensor]) -> torch.Tensor:
        """Text + image cross-attention, then MultiTalk's audio cross-attention, as residuals."""
        x = x + self.cross_attn(self.norm3(x), ctx)
        if ctx.audio_tokens is not None:
            frames = ctx.grid[0]
            x = x + self.audio_cross_attn(self.norm_x(x), ctx.audio_tokens, frames, ctx.routing,
                                          attn_map, ctx.attention)
        return x
