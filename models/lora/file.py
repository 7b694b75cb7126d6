"""Reading a LoRA file through the pack's weight reader, grouped by the layer each key patches.

Nothing here knows the model: `resolve.py` matches the layers against it. Files are read
whole once (LoRAs are small next to the base) and kept in a small cache keyed by path, size
and modification time, so changing a strength re-applies without reading the file again.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Mapping, Union

import torch

from ..errors import CheckpointError
from ..weights import as_dtype, open_weights, weights_of
from .keys import split_part, uses_diffusers_names

LoraSource = Union[str, os.PathLike, Mapping[str, torch.Tensor]]
_CACHE: "OrderedDict[tuple, LoraFile]" = OrderedDict()
_CACHE_SIZE = 4


@dataclass
class LoraFile:
    """A LoRA's tensors: written layer name -> {part: tensor} with parts up/down/alpha/diff/diff_b."""

    name: str
    layers: dict[str, dict[str, torch.Tensor]]
    diffusers_names: bool
    unsupported: list[str] = field(default_factory=list)  # keys of adapter kinds not computed here
    unknown: list[str] = field(default_factory=list)  # keys that are no LoRA part at all


def read_lora(source: LoraSource) -> LoraFile:
    """A LoRA from a file (any format the weight reader opens) or a state dict; cached per file."""
    if isinstance(source, Mapping):
        return _parse("<state dict>", weights_of(source, "<LoRA state dict>"))
    path = os.path.realpath(os.fspath(source))
    try:
        stat = os.stat(path)
        key = (path, stat.st_size, stat.st_mtime_ns)
    except OSError:
        key = None
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    lora = _parse(os.fspath(source), open_weights(source, allow_folder=False))
    if key is not None:
        _CACHE[key] = lora
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return lora


def _parse(name: str, weights: Mapping[str, torch.Tensor]) -> LoraFile:
    layers: dict[str, dict[str, torch.Tensor]] = {}
    unsupported, unknown = [], []
    for key in weights.keys():
        layer, part = split_part(key)
        if part is None:
            unknown.append(key)
        elif part == "unsupported":
            unsupported.append(key)
        else:
            layers.setdefault(layer, {})[part] = as_dtype(weights, key, None)
    if not layers:
        raise CheckpointError(f"'{name}' holds no LoRA weights (no lora_up/lora_down, lora_A/lora_B, .diff or "
                              f".diff_b keys; first keys: {', '.join(sorted(weights.keys())[:3]) or 'none'}). "
                              "Choose a LoRA file (models/loras).")
    for layer, parts in layers.items():
        if ("up" in parts) != ("down" in parts):
            raise CheckpointError(f"'{name}': layer '{layer}' has a lora_{'up' if 'up' in parts else 'down'} "
                                  "matrix without its partner. The file is damaged or partial; download it again.")
    return LoraFile(name, layers, uses_diffusers_names(layers), unsupported, unknown)


def clear_cache() -> None:
    _CACHE.clear()
