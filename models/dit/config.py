"""The DiT's configuration and its inference from a state dict.

Real checkpoints carry no config, so every size is read off the weights; the one thing the
weights cannot tell is the head count (no per-head tensors exist), which follows the Wan rule
of 128-wide heads unless given (tiny test models) or stored in the file's metadata.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from typing import Mapping, Optional

import torch

from ..errors import CheckpointError

WAN_HEAD_DIM = 128
CLIP_TOKENS = 257  # CLIP ViT-H/14 penultimate tokens that lead the cross-attention context


@dataclass(frozen=True)
class DiTConfig:
    """Sizes of a Wan2.1-I2V DiT with MultiTalk audio layers (defaults: the released 14B)."""

    dim: int = 5120
    ffn_dim: int = 13824
    num_heads: int = 40
    num_layers: int = 40
    in_dim: int = 36
    out_dim: int = 16
    text_dim: int = 4096
    text_len: int = 512
    freq_dim: int = 256
    patch_size: tuple[int, int, int] = (1, 2, 2)
    eps: float = 1e-6
    clip_dim: int = 1280
    # Audio adapter (official names in brackets): window [audio_window], VAE time stride
    # [vae_scale], hidden width [intermediate_dim], token width [output_dim], tokens per
    # latent frame [context_tokens], wav2vec layers x channels flattened.
    audio_window: int = 5
    vae_scale: int = 4
    audio_intermediate_dim: int = 512
    audio_token_dim: int = 768
    audio_tokens: int = 32
    audio_feature_dim: int = 12 * 768
    cross_attn_norm: bool = True
    norm_input_visual: bool = True
    norm_output_audio: bool = True
    has_audio: bool = True
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    @property
    def audio_window_vf(self) -> int:
        """Window of a later latent frame: 4 video frames cover 5 + 4 - 1 wav2vec frames."""
        return self.audio_window + self.vae_scale - 1

    def with_overrides(self, **overrides) -> "DiTConfig":
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


def _block_count(keys) -> int:
    indices = {int(m.group(1)) for k in keys if (m := re.match(r"blocks\.(\d+)\.", k))}
    if not indices:
        return 0
    if indices != set(range(max(indices) + 1)):
        missing = sorted(set(range(max(indices) + 1)) - indices)[:5]
        raise CheckpointError(f"The checkpoint's blocks are not contiguous: blocks {missing} are missing "
                              "(a truncated or partial file?).")
    return max(indices) + 1


def _shape(sd: Mapping[str, torch.Tensor], key: str) -> tuple[int, ...]:
    return tuple(sd[key].shape)


def infer_dit_config(sd: Mapping[str, torch.Tensor], num_heads: Optional[int] = None,
                     text_len: Optional[int] = None) -> DiTConfig:
    """Read a DiTConfig off a (base + audio) state dict in the released key layout."""
    if "patch_embedding.weight" not in sd:
        raise CheckpointError("No 'patch_embedding.weight' in the weights: not a Wan DiT checkpoint.")
    dim, in_dim, *patch = _shape(sd, "patch_embedding.weight")
    head_out = _shape(sd, "head.head.weight")[0]
    heads = num_heads or (dim // WAN_HEAD_DIM if dim % WAN_HEAD_DIM == 0 else 0)
    if not heads or dim % heads or (dim // heads) % 2:
        raise CheckpointError(f"Cannot tell the head count of a width-{dim} model: pass num_heads.")
    cfg = DiTConfig(
        dim=dim,
        in_dim=in_dim,
        patch_size=tuple(patch),
        out_dim=head_out // math.prod(patch),
        ffn_dim=_shape(sd, "blocks.0.ffn.0.weight")[0],
        num_layers=_block_count(sd.keys()),
        num_heads=heads,
        text_dim=_shape(sd, "text_embedding.0.weight")[1],
        freq_dim=_shape(sd, "time_embedding.0.weight")[1],
        clip_dim=_shape(sd, "img_emb.proj.0.weight")[0] if "img_emb.proj.0.weight" in sd else 1280,
        text_len=text_len or 512,
        cross_attn_norm="blocks.0.norm3.weight" in sd,
        norm_input_visual="blocks.0.norm_x.weight" in sd,
    )
    if "audio_proj.proj1.weight" not in sd:
        return replace(cfg, has_audio=False)
    return _with_audio_sizes(cfg, sd)


def _with_audio_sizes(cfg: DiTConfig, sd: Mapping[str, torch.Tensor]) -> DiTConfig:
    inter, in_first = _shape(sd, "audio_proj.proj1.weight")
    in_later = _shape(sd, "audio_proj.proj1_vf.weight")[1]
    # in_first = window * F, in_later = (window + vae_scale - 1) * F with vae_scale 4.
    feature_dim = (in_later - in_first) // (cfg.vae_scale - 1)
    if feature_dim <= 0 or in_first % feature_dim:
        raise CheckpointError(f"Audio projection sizes {in_first} / {in_later} do not fit a wav2vec window.")
    token_dim = _shape(sd, "blocks.0.audio_cross_attn.kv_linear.weight")[1]
    proj3_out = _shape(sd, "audio_proj.proj3.weight")[0]
    return replace(
        cfg,
        has_audio=True,
        audio_window=in_first // feature_dim,
        audio_feature_dim=feature_dim,
        audio_intermediate_dim=inter,
        audio_token_dim=token_dim,
        audio_tokens=proj3_out // token_dim,
        norm_output_audio="audio_proj.norm.weight" in sd,
    )
