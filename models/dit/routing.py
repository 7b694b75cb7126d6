"""Speaker-routing modes of the audio cross-attention and their speaker limits.

- "lrope": the paper's L-RoPE. Trained (released weights) for one and two speakers; for three
  or more the label ranges are generalised (see docs/model.md), which the weights never saw.
- "masked": each speaker's audio tokens attended separately, the result gated by that
  speaker's adaptive localisation mask and summed. Untrained combination of trained parts;
  works for any count up to the limit below.
"""
from __future__ import annotations

import torch

ROUTING_MODES = ("lrope", "masked")

# Upper bounds that the pack accepts per mode (memory and label spacing stay sane below these).
MAX_SPEAKERS = {"lrope": 6, "masked": 8}

# The released weights were trained with these L-RoPE label ranges (official class_range 24,
# class_interval 4): speaker 1 in [0, 4], speaker 2 in [20, 24], background at 12.
LROPE_CLASS_RANGE = 24
LROPE_CLASS_INTERVAL = 4


def lrope_speaker_start(speaker: int) -> float:
    """Lower end of a speaker's label range: 0, 20, 40, ... (trained: the first two)."""
    return float(speaker * (LROPE_CLASS_RANGE - LROPE_CLASS_INTERVAL))


def lrope_background_label() -> float:
    return float(LROPE_CLASS_RANGE // 2)


def lrope_query_labels(attn_map: torch.Tensor, num_speakers: int) -> torch.Tensor:
    """L-RoPE positions [B, L] of video tokens from a localisation map [B, S+1, L].

    Each token takes the class with the largest map value; a speaker token's position is its
    map value min-max normalised (over all tokens) into that speaker's range, a background
    token sits at 12.
    """
    batch, classes, length = attn_map.shape
    lo = attn_map.amin(dim=2, keepdim=True)
    hi = attn_map.amax(dim=2, keepdim=True)
    normalised = (attn_map - lo) / (hi - lo + 1e-8)  # [B, C, L] in 0..1
    starts = torch.tensor([lrope_speaker_start(s) for s in range(num_speakers)],
                          device=attn_map.device, dtype=attn_map.dtype)
    speaker_pos = normalised[:, :num_speakers] * LROPE_CLASS_INTERVAL + starts[None, :, None]
    background = torch.full((batch, 1, length), lrope_background_label(),
                            device=attn_map.device, dtype=attn_map.dtype)
    candidates = torch.cat([speaker_pos, background], dim=1)  # [B, S+1, L]
    winner = attn_map.argmax(dim=1, keepdim=True)  # [B, 1, L]
    return candidates.gather(1, winner).squeeze(1)


def lrope_key_labels(num_speakers: int, tokens_per_speaker: int, device: torch.device) -> torch.Tensor:
    """L-RoPE positions [S * tokens] of audio keys: each speaker's range centre (2, 22, ...)."""
    centres = torch.tensor([lrope_speaker_start(s) + LROPE_CLASS_INTERVAL / 2 for s in range(num_speakers)],
                           device=device)
    return centres.repeat_interleave(tokens_per_speaker)


def speaker_gates(attn_map: torch.Tensor, num_speakers: int) -> torch.Tensor:
    """Hard adaptive masks [B, S, L] for masked routing: 1 where a speaker wins the map."""
    winner = attn_map.argmax(dim=1)  # [B, L]
    speakers = torch.arange(num_speakers, device=attn_map.device)
    return (winner.unsqueeze(1) == speakers[None, :, None]).to(attn_map.dtype)
