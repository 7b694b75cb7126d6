"""MultiTalk's audio adapter: per-video-frame wav2vec windows -> audio tokens per latent frame."""
from __future__ import annotations

import torch
from torch import nn

from ..errors import GenerationInputError


def latent_frame_windows(audio: torch.Tensor, vae_scale: int, window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Split per-video-frame windows into the first latent frame's and the later ones'.

    audio [B, S, F, window, layers, C] with F = 1 + vae_scale * (T_lat - 1). Returns
    first [B, S, 1, window, layers, C] and later [B, S, T_lat - 1, window + vae_scale - 1, layers, C]:
    each later latent frame covers `vae_scale` video frames and takes positions 0..mid of the
    first one's window, the centre of each inner frame, and mid..end of the last one's.
    """
    frames = audio.shape[2]
    if (frames - 1) % vae_scale:
        raise GenerationInputError(f"The audio covers {frames} video frames; it must be {vae_scale}n+1.")
    mid = window // 2
    first = audio[:, :, :1]
    grouped = audio[:, :, 1:].unflatten(2, (-1, vae_scale))  # [B, S, T-1, vae_scale, window, l, c]
    later = torch.cat([
        grouped[:, :, :, 0, : mid + 1],           # first video frame: positions 0..mid
        grouped[:, :, :, 1:-1, mid],              # inner frames: the centre position
        grouped[:, :, :, -1, mid:],               # last frame: positions mid..end
    ], dim=3)
    return first, later


class AudioProjection(nn.Module):
    """wav2vec windows -> `tokens` audio tokens of width `token_dim` per latent frame."""

    def __init__(self, window: int, window_vf: int, feature_dim: int, intermediate_dim: int,
                 token_dim: int, tokens: int, norm_output: bool):
        super().__init__()
        self.tokens, self.token_dim = tokens, token_dim
        self.proj1 = nn.Linear(window * feature_dim, intermediate_dim)
        self.proj1_vf = nn.Linear(window_vf * feature_dim, intermediate_dim)
        self.proj2 = nn.Linear(intermediate_dim, intermediate_dim)
        self.proj3 = nn.Linear(intermediate_dim, tokens * token_dim)
        self.norm = nn.LayerNorm(token_dim) if norm_output else nn.Identity()

    def forward(self, first: torch.Tensor, later: torch.Tensor) -> torch.Tensor:
        # first [B, S, 1, w, l, c], later [B, S, T-1, w_vf, l, c] -> [B, S, T, tokens, token_dim]
        h_first = torch.relu(self.proj1(first.flatten(3)))
        h_later = torch.relu(self.proj1_vf(later.flatten(3)))
        hidden = torch.relu(self.proj2(torch.cat([h_first, h_later], dim=2)))
        tokens = self.proj3(hidden).unflatten(-1, (self.tokens, self.token_dim))
        return self.norm(tokens)


def reset_audio_parameters(modules: list[nn.Module]) -> None:
    """Fresh audio layers: Xavier weights, zero biases, unit norms, and a zero output projection
    of every audio cross-attention, so new layers start as a no-op on the backbone."""
    from .audio_attention import AudioCrossAttention

    for module in modules:
        for sub in module.modules():
            if isinstance(sub, nn.Linear):
                nn.init.xavier_uniform_(sub.weight)
                nn.init.zeros_(sub.bias)
            elif isinstance(sub, nn.LayerNorm) and sub.weight is not None:
                nn.init.ones_(sub.weight)
                nn.init.zeros_(sub.bias)
        if isinstance(module, AudioCrossAttention):
            nn.init.zeros_(module.proj.weight)
