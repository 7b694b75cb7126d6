"""The weight sources of one DiT (base model, shards, audio-layer files) merged into one key space.

Each source goes through the pack's weight reader (models/weights); the wrapper prefix of
ComfyUI saves (`model.diffusion_model.`, ...) is removed here, and audio-only files are laid
over the base. Nothing is read but keys, shapes and dtypes: the tensors are read one by one
when the model takes them. Wrong or partial sources get a CheckpointError naming the files.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping, Sequence, Union

import torch

from ..encoders.kinds import describe as describe_kind
from ..errors import CheckpointError
from ..weights import CanonicalWeights, open_weights, weights_of
from .keys import describe_keys, is_audio_key, wrapper_prefix
from .weight_kinds import base_model_problem, guess_weight_kind

Source = Union[str, os.PathLike, Mapping[str, torch.Tensor]]


@dataclass
class Part:
    """One source: its name, its canonical weights and its keys in the released layout."""

    name: str
    weights: CanonicalWeights
    keys: dict[str, str]  # released name -> canonical key of `weights`

    @property
    def audio_only(self) -> bool:
        return bool(self.keys) and all(map(is_audio_key, self.keys))


def open_parts(source: Union[Source, Sequence[Source]]) -> list[Part]:
    items = source if isinstance(source, (list, tuple)) else [source]
    if not items:
        raise CheckpointError("No weights given: pass the Wan2.1-I2V base model and a MultiTalk audio file.")
    parts = []
    for item in items:
        if isinstance(item, Mapping):
            name, weights = "<state dict>", weights_of(item)
        else:
            name, weights = os.fspath(item), open_weights(item, describe=describe_kind)
        prefix = wrapper_prefix(weights.keys())
        keys = {(k[len(prefix):] if k.startswith(prefix) else k): k for k in weights.keys()
                if not k.endswith(".scale_weight")}  # scales are read beside their weights
        parts.append(Part(name, weights, keys))
    return parts


def merge_parts(parts: list[Part], require_audio: bool) -> tuple[dict[str, tuple[Part, str]], dict]:
    """Base parts (whole files or shards) first, then audio-only files over them.

    Returns (key -> (part, canonical key), key -> meta tensor with the shape and dtype)."""
    audio = [p for p in parts if p.audio_only]
    base = [p for p in parts if not p.audio_only]
    if not base:
        names = ", ".join(f"'{p.name}'" for p in audio)
        raise CheckpointError(f"{names} holds only MultiTalk/InfiniteTalk audio layers; load it together with "
                              "the Wan2.1-I2V-14B base model (a file from diffusion_models).")
    refs = {key: (part, canonical) for part in base + audio for key, canonical in part.keys.items()}
    metas = {key: part.weights.meta(canonical) for key, (part, canonical) in refs.items()}
    base_names = " + ".join(f"'{p.name}'" for p in base)
    if "patch_embedding.weight" not in metas:
        base_keys = {key: metas[key] for part in base for key in part.keys}
        raise CheckpointError(f"{base_names} is not a Wan DiT: it looks like {guess_weight_kind(base_keys)} "
                              f"(keys: {describe_keys(base_keys)}). Choose the Wan2.1-I2V-14B diffusion model "
                              "(models/diffusion_models) as the model, and load this file with its own loader.")
    problem = base_model_problem(metas, base_names.strip("'"))
    if problem:
        raise CheckpointError(problem)
    if require_audio and not any(is_audio_key(k) for k in metas):
        raise CheckpointError(f"{base_names} has no MultiTalk audio layers: also load multitalk.safetensors "
                              "or infinitetalk.safetensors (models/model_patches).")
    return refs, metas


def stored_config(parts: list[Part]) -> dict[str, int]:
    """`num_heads` / `text_len` stored in a safetensors header (`multitalk.num_heads`, ...) by
    files this pack writes for models too small for the 128-wide-head rule (tiny demo weights)."""
    found: dict[str, int] = {}
    for part in parts:
        for name in ("num_heads", "text_len"):
            if f"multitalk.{name}" in part.weights.metadata:
                found[name] = int(part.weights.metadata[f"multitalk.{name}"])
    return found


def check_keys(expected: set[str], given: set[str], parts: list[Part], fresh_audio: bool) -> None:
    missing = expected - given
    if fresh_audio:
        missing = {k for k in missing if not is_audio_key(k)}
    unexpected = given - expected
    if not missing and not unexpected:
        return
    names = " + ".join(f"'{p.name}'" for p in parts)
    lines = [f"{names} does not match the Wan2.1-I2V + MultiTalk layout."]
    if missing:
        lines.append(f"Missing keys: {describe_keys(missing)}.")
    if unexpected:
        lines.append(f"Unexpected keys: {describe_keys(unexpected)}.")
    lines.append("A truncated download, a LoRA, or a model of another family was probably loaded.")
    raise CheckpointError(" ".join(lines))
