"""Audio tokens of the 1.3B variant: one set of tokens per *video* frame (FACTS.md §5.1).

(The 14B variant uses MultiTalk's per-latent-frame projection, models/dit/audio_adapter.py.)
"""
from __future__ import annotations

import torch
from torch import nn


class FrameAudioProjection(nn.Module):
    """wav2vec windows [..., F, window, layers, C] -> tokens [..., F, tokens, dim] (`audio_emb`)."""

    def __init__(self, window: int, feature_dim: int, intermediate_dim: int, dim: int, tokens: int):
        super().__init__()
        self.tokens, self.dim = tokens, dim
        self.proj1 = nn.Linear(window * feature_dim, intermediate_dim)
        self.proj2 = nn.Linear(intermediate_dim, intermediate_dim)
        self.proj3 = nn.Linear(intermediate_dim, tokens * dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        # the window is flattened in (position, layer, channel) order, as the official view()
        hidden = torch.relu(self.proj1(windows.flatten(-3)))
        hidden = torch.relu(self.proj2(hidden))
        return self.norm(self.proj3(hidden).unflatten(-1, (self.tokens, self.dim)))
