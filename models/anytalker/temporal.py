"""Which audio frames each latent frame sees in the 1.3B audio-face attention (FACTS.md §5.2).

Latent frame 0 sees every audio frame; latent frame j >= 1 sees audio frames 4(j-1)+1 .. 4j,
the video frames it covers. Face tokens are always visible. When the audio has exactly
4(T-1)+1 frames, every later latent frame sees 4 frames: the attention then runs per latent
frame on just its keys (no mask, any attention backend). Otherwise a boolean mask is used.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..dit.attention import AttentionFn


def audio_frame_spans(latent_frames: int, audio_frames: int, vae_scale: int = 4) -> list[tuple[int, int]]:
    """Per latent frame, the [start, end) audio frames it attends (clipped to the audio)."""
    spans = [(0, audio_frames)]
    for j in range(1, latent_frames):
        spans.append((min(vae_scale * (j - 1) + 1, audio_frames), min(vae_scale * j + 1, audio_frames)))
    return spans


def is_uniform(latent_frames: int, audio_frames: int, vae_scale: int = 4) -> bool:
    """True when every later latent frame sees exactly `vae_scale` audio frames."""
    return latent_frames == 1 or audio_frames == vae_scale * (latent_frames - 1) + 1


def temporal_token_mask(grid: tuple[int, int, int], audio_frames: int, tokens_per_frame: int,
                        vae_scale: int = 4, device: torch.device | str = "cpu") -> torch.Tensor:
    """bool [L, F * tokens_per_frame]: which audio tokens each video token may attend."""
    t, h, w = grid
    frames = torch.zeros(t, audio_frames, dtype=torch.bool, device=device)
    for j, (start, end) in enumerate(audio_frame_spans(t, audio_frames, vae_scale)):
        frames[j, start:end] = True
    # audio tokens are frame-major; video tokens t-major
    return frames.repeat_interleave(tokens_per_frame, dim=1).repeat_interleave(h * w, dim=0)


def _per_latent_frame(keys: torch.Tensor, later: int, tokens_per_frame: int) -> torch.Tensor:
    # [B, H, F*N, D] -> [B*later, H, vae_scale*N, D]: the audio of latent frames 1..T-1
    return keys[:, :, tokens_per_frame:].unflatten(2, (later, -1)).transpose(1, 2).flatten(0, 1)


def _repeat_faces(faces: torch.Tensor, later: int) -> torch.Tensor:
    # [B, H, 257, D] -> [B*later, H, 257, D]
    return faces[:, None].expand(-1, later, -1, -1, -1).flatten(0, 1)


def grouped_face_audio_attention(q: torch.Tensor, keys: tuple[torch.Tensor, torch.Tensor],
                                 values: tuple[torch.Tensor, torch.Tensor], grid: tuple[int, int, int],
                                 tokens_per_frame: int, attention: AttentionFn) -> torch.Tensor:
    """Audio-face attention per latent frame, for audio of exactly 4(T-1)+1 frames.

    q [B, H, L, D]; keys/values = (face [B, H, 257, D], audio [B, H, F*N, D]). Returns [B, H, L, D]."""
    (k_face, k_audio), (v_face, v_audio) = keys, values
    t, h, w = grid
    hw = h * w
    first = attention(q[:, :, :hw], torch.cat([k_face, k_audio], dim=2), torch.cat([v_face, v_audio], dim=2))
    if t == 1:
        return first
    later = t - 1
    q_later = q[:, :, hw:].unflatten(2, (later, hw)).transpose(1, 2).flatten(0, 1)  # [B*(T-1), H, hw, D]
    k = torch.cat([_repeat_faces(k_face, later), _per_latent_frame(k_audio, later, tokens_per_frame)], dim=2)
    v = torch.cat([_repeat_faces(v_face, later), _per_latent_frame(v_audio, later, tokens_per_frame)], dim=2)
    rest = attention(q_later, k, v).unflatten(0, (q.shape[0], later)).transpose(1, 2).flatten(2, 3)
    return torch.cat([first, rest], dim=2)


def masked_face_audio_attention(q: torch.Tensor, keys: tuple[torch.Tensor, torch.Tensor],
                                values: tuple[torch.Tensor, torch.Tensor], grid: tuple[int, int, int],
                                audio_frames: int, tokens_per_frame: int) -> torch.Tensor:
    """The same attention with the official boolean mask (any audio length). Returns [B, H, L, D]."""
    (k_face, k_audio), (v_face, v_audio) = keys, values
    audio_mask = temporal_token_mask(grid, audio_frames, tokens_per_frame, device=q.device)
    face_mask = torch.ones(audio_mask.shape[0], k_face.shape[2], dtype=torch.bool, device=q.device)
    mask = torch.cat([face_mask, audio_mask], dim=1)  # [L, 257 + F*N]
    return F.scaled_dot_product_attention(q, torch.cat([k_face, k_audio], dim=2),
                                          torch.cat([v_face, v_audio], dim=2), attn_mask=mask)
