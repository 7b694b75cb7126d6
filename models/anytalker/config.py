"""AnyTalker's configuration, read off the weights (FACTS.md §2).

The backbone sizes come from the pack's Wan DiT inference (same tensor names). What AnyTalker
adds: the variant (1.3B `a2v_af` audio-face cross-attention, or the 14B legacy path whose
audio layers are MultiTalk's plus face keys/values), the face projection's CLIP width and, for
the 1.3B variant, the per-video-frame audio projection `audio_emb`.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping, Optional

import torch

from ..dit.config import DiTConfig, infer_dit_config
from ..errors import CheckpointError
from .family import (ANYTALKER_FAMILIES, FAMILY_ANYTALKER_AF, FAMILY_ANYTALKER_LEGACY, describe_family,
                     detect_family)

VARIANT_AF = "af"
VARIANT_LEGACY = "legacy"
AF_AUDIO_WINDOW = 5  # the official constructor hard-codes AudioProjModel(seq_len=5, ...)
FACE_TOKENS = 257  # CLIP penultimate tokens of a face crop


@dataclass(frozen=True)
class AnyTalkerConfig:
    """Sizes of an AnyTalker DiT. `dit` holds the shared Wan backbone (and, for the legacy variant,
    MultiTalk's audio projection sizes); the `af_*` fields size the 1.3B variant's `audio_emb`."""

    variant: str
    dit: DiTConfig
    face_dim: int = 1280  # CLIP width that `audio_ref_emb` projects
    af_audio_window: int = AF_AUDIO_WINDOW
    af_audio_feature_dim: int = 12 * 768  # wav2vec layers x channels
    af_audio_intermediate_dim: int = 512
    af_audio_tokens: int = 32  # tokens per video frame

    @property
    def family(self) -> str:
        return FAMILY_ANYTALKER_AF if self.variant == VARIANT_AF else FAMILY_ANYTALKER_LEGACY

    @property
    def audio_window(self) -> int:
        return self.af_audio_window if self.variant == VARIANT_AF else self.dit.audio_window

    @property
    def audio_feature_dim(self) -> int:
        """wav2vec layers x channels that one window position carries."""
        return self.af_audio_feature_dim if self.variant == VARIANT_AF else self.dit.audio_feature_dim


def _shape(sd: Mapping[str, torch.Tensor], key: str) -> tuple[int, ...]:
    if key not in sd:
        raise CheckpointError(f"The AnyTalker weights lack '{key}': the file is incomplete or of another model.")
    return tuple(sd[key].shape)


def _af_audio_sizes(cfg: AnyTalkerConfig, sd: Mapping[str, torch.Tensor]) -> AnyTalkerConfig:
    inter, flat = _shape(sd, "audio_emb.proj1.weight")
    if flat % AF_AUDIO_WINDOW:
        raise CheckpointError(f"audio_emb.proj1 takes {flat} inputs, not a multiple of the "
                              f"{AF_AUDIO_WINDOW}-frame audio window.")
    tokens, rem = divmod(_shape(sd, "audio_emb.proj3.weight")[0], cfg.dit.dim)
    if rem:
        raise CheckpointError(f"audio_emb.proj3 does not output whole {cfg.dit.dim}-wide tokens.")
    return replace(cfg, af_audio_feature_dim=flat // AF_AUDIO_WINDOW, af_audio_intermediate_dim=inter,
                   af_audio_tokens=tokens)


def infer_anytalker_config(sd: Mapping[str, torch.Tensor], num_heads: Optional[int] = None,
                           text_len: Optional[int] = None) -> AnyTalkerConfig:
    """Read an AnyTalkerConfig off a state dict in the released key layout (no prefix).

    Heads follow the Wan rule (128-wide: 12 for 1.3B, 40 for 14B) unless given."""
    family = detect_family(sd.keys())
    if family not in ANYTALKER_FAMILIES:
        raise CheckpointError(f"These weights are {describe_family(family)}, not an AnyTalker checkpoint "
                              "(no audio_ref_emb / face keys): load them with the MultiTalk model loader.")
    dit = infer_dit_config(sd, num_heads=num_heads, text_len=text_len)
    face_dim = _shape(sd, "audio_ref_emb.proj.0.weight")[0]
    if family == FAMILY_ANYTALKER_LEGACY:
        if not dit.has_audio:
            raise CheckpointError("An AnyTalker 14B checkpoint without 'audio_proj.*': the file is incomplete.")
        return AnyTalkerConfig(variant=VARIANT_LEGACY, dit=dit, face_dim=face_dim)
    return _af_audio_sizes(AnyTalkerConfig(variant=VARIANT_AF, dit=replace(dit, has_audio=False),
                                           face_dim=face_dim), sd)
