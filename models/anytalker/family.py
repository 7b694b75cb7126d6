"""Which model family a set of weights belongs to, and which combinations are refused.

Key facts (AnyTalker FACTS.md §2, DESIGN.md §2):
- MultiTalk / InfiniteTalk audio layers: `audio_proj.*`, `blocks.i.norm_x.*`,
  `blocks.i.audio_cross_attn.{q_linear,kv_linear,proj}.*`, loaded over a Wan2.1-I2V base.
- AnyTalker 1.3B (`a2v_af`): `audio_emb.*`, `audio_ref_emb.*`, `blocks.i.cross_attn.{k,v}_audio`,
  `{k,v}_face` inside the text cross-attention. A complete DiT in one file.
- AnyTalker 14B (legacy path): MultiTalk's audio names plus `audio_cross_attn.{k,v}_face` and
  `audio_ref_emb.*`. A complete DiT in one file.
"""
from __future__ import annotations

from typing import Iterable, Optional

from ..audio.wav2vec_loader import WAV2VEC_ANYTALKER, WAV2VEC_FAMILIES, WAV2VEC_MULTITALK
from ..errors import CheckpointError, GenerationInputError

FAMILY_WAN = "wan"  # a Wan2.1 base without audio layers
FAMILY_MULTITALK = "multitalk"
FAMILY_ANYTALKER_AF = "anytalker-1.3b"
FAMILY_ANYTALKER_LEGACY = "anytalker-14b"
ANYTALKER_FAMILIES = (FAMILY_ANYTALKER_AF, FAMILY_ANYTALKER_LEGACY)

_DESCRIPTIONS = {
    FAMILY_WAN: "a Wan2.1 DiT without audio layers",
    FAMILY_MULTITALK: "MultiTalk / InfiniteTalk audio layers",
    FAMILY_ANYTALKER_AF: "an AnyTalker 1.3B checkpoint (audio-face cross-attention, a complete model)",
    FAMILY_ANYTALKER_LEGACY: "an AnyTalker 14B multi-person checkpoint (a complete model)",
}


def detect_family(keys: Iterable[str]) -> Optional[str]:
    """The family of a state dict's keys (released names, no prefix), or None if none fits."""
    keys = list(keys)

    def has(part: str) -> bool:
        return any(part in key for key in keys)

    if has(".cross_attn.k_audio.") or any(k.startswith("audio_emb.") for k in keys):
        return FAMILY_ANYTALKER_AF
    if has(".audio_cross_attn.k_face.") or any(k.startswith("audio_ref_emb.") for k in keys):
        return FAMILY_ANYTALKER_LEGACY
    if any(k.startswith("audio_proj.") for k in keys) or has(".audio_cross_attn.q_linear."):
        return FAMILY_MULTITALK
    if any(k.startswith(("patch_embedding.", "blocks.")) for k in keys):
        return FAMILY_WAN
    return None


def describe_family(family: Optional[str]) -> str:
    return _DESCRIPTIONS.get(family, "weights of no known model family")


def check_combination(base_family: Optional[str], audio_family: Optional[str],
                      base_name: str = "the base model", audio_name: str = "the audio file") -> str:
    """The family that a base file plus an optional audio-layer file make, or a CheckpointError.

    AnyTalker checkpoints hold the whole DiT with their own audio layers, so they load alone:
    a MultiTalk audio file over an AnyTalker base, or an AnyTalker file as the audio layers of
    a Wan/MultiTalk base, is refused with what to do instead.
    """
    if base_family in ANYTALKER_FAMILIES and audio_family is not None:
        raise CheckpointError(
            f"'{audio_name}' ({describe_family(audio_family)}) cannot be loaded over '{base_name}', which is "
            f"{describe_family(base_family)} with its own audio layers. Load the AnyTalker checkpoint alone "
            "(no audio file), or choose a Wan2.1-I2V-14B base to use the MultiTalk audio file.")
    if audio_family in ANYTALKER_FAMILIES:
        raise CheckpointError(
            f"'{audio_name}' is {describe_family(audio_family)}, not a MultiTalk/InfiniteTalk audio file, so it "
            f"cannot be added to '{base_name}'. Load '{audio_name}' on its own as the model, with no audio file.")
    if audio_family not in (None, FAMILY_MULTITALK):
        raise CheckpointError(
            f"'{audio_name}' holds {describe_family(audio_family)}, not MultiTalk/InfiniteTalk audio layers: "
            "choose multitalk.safetensors or infinitetalk.safetensors as the audio file.")
    if base_family is None:
        raise CheckpointError(f"'{base_name}' holds {describe_family(None)}: choose a Wan2.1-I2V or AnyTalker DiT.")
    if audio_family == FAMILY_MULTITALK:
        return FAMILY_MULTITALK
    return base_family


def model_family(model: object) -> str:
    """The family of a loaded DiT: AnyTalker models say so; the pack's MultiTalk DiT does not."""
    return getattr(model, "family", FAMILY_MULTITALK)


def wav2vec_for(family: Optional[str]) -> str:
    """Which wav2vec2 a model family was trained with (a key of WAV2VEC_FAMILIES)."""
    return WAV2VEC_ANYTALKER if family in ANYTALKER_FAMILIES else WAV2VEC_MULTITALK


def check_audio_fits(family: Optional[str], audio_family: str) -> None:
    """Refuse audio features made by the other family's wav2vec2, saying which loader to use."""
    wanted = wav2vec_for(family)
    if audio_family != wanted:
        raise GenerationInputError(
            f"The audio features were made with {WAV2VEC_FAMILIES.get(audio_family, audio_family)}, but the model is "
            f"{describe_family(family)}, trained with {WAV2VEC_FAMILIES[wanted]}: load that wav2vec2 in MultiTalk "
            "wav2vec2 Loader and encode the audio again.")
