"""Reading DiT weight files into plain state dicts in the released key layout.

Handles: single safetensors / .pt / .pth / .bin files, sharded checkpoints (the index json, the
folder holding it, or the list of shards), key prefixes added by ComfyUI (`model.diffusion_model.`)
or training wrappers, and ComfyUI's scaled-fp8 marker. Every failure names the file.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Iterable, Mapping

import torch

from ..errors import CheckpointError

WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")
# Prefixes that wrap the released names in ComfyUI saves, ComfyUI repacks and training wrappers.
KNOWN_PREFIXES = ("model.diffusion_model.", "diffusion_model.", "model.", "module.", "transformer.")
ANCHOR_KEYS = ("patch_embedding.weight", "audio_proj.proj1.weight", "blocks.0.self_attn.q.weight",
               "blocks.0.audio_cross_attn.q_linear.weight", "head.head.weight")
MARKER_KEYS = ("scaled_fp8",)  # ComfyUI's flag tensor for scaled-fp8 files; carries no weight
_AUDIO_KEY = re.compile(r"^(audio_proj\.|blocks\.\d+\.(norm_x|audio_cross_attn)\.)")


def is_audio_key(key: str) -> bool:
    return bool(_AUDIO_KEY.match(key))


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"Cannot read '{path}': {exc}. The file is truncated or not a safetensors "
                              "file; download it again.") from exc


def _read_torch(path: Path) -> dict[str, torch.Tensor]:
    try:
        data = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # torch raises many types for bad pickles and zips
        raise CheckpointError(f"Cannot read '{path}' as a PyTorch checkpoint: {exc}.") from exc
    for wrapper in ("state_dict", "model", "module"):
        if isinstance(data, dict) and isinstance(data.get(wrapper), dict):
            data = data[wrapper]
    if not isinstance(data, dict) or not all(torch.is_tensor(v) for v in data.values()):
        raise CheckpointError(f"'{path}' holds no plain state dict of tensors.")
    return data


def _shards_from_index(index: Path) -> list[Path]:
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
    except (OSError, ValueError, KeyError) as exc:
        raise CheckpointError(f"'{index}' is not a sharded-checkpoint index (no weight_map): {exc}.") from exc
    shards = sorted({index.parent / name for name in weight_map.values()})
    missing = [s.name for s in shards if not s.is_file()]
    if missing:
        raise CheckpointError(f"Shards listed in '{index}' are missing: {', '.join(missing[:4])}"
                              f"{' ...' if len(missing) > 4 else ''} ({len(missing)} of {len(shards)}). "
                              "Download every shard into the same folder.")
    return shards


def expand_sources(source: str | os.PathLike) -> list[Path]:
    """A file, an index json or a folder -> the weight files to read."""
    path = Path(source).expanduser()
    if path.is_dir():
        indices = sorted(path.glob("*.index.json"))
        if indices:
            return _shards_from_index(indices[0])
        files = sorted(p for p in path.iterdir() if p.suffix in WEIGHT_SUFFIXES)
        if not files:
            raise CheckpointError(f"The folder '{path}' holds no weight files ({', '.join(WEIGHT_SUFFIXES)}).")
        return files
    if not path.is_file():
        raise CheckpointError(f"'{path}' does not exist. Check the path or the file name.")
    if path.name.endswith(".json"):
        return _shards_from_index(path)
    return [path]


def read_weight_file(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
    if path.suffix in WEIGHT_SUFFIXES:
        return _read_torch(path)
    raise CheckpointError(f"'{path}' is not a weight file: expected one of {', '.join(WEIGHT_SUFFIXES)}.")


def strip_prefix(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove a wrapper prefix such as `model.diffusion_model.` when the released names sit under it."""
    for prefix in KNOWN_PREFIXES:
        if any(prefix + anchor in sd for anchor in ANCHOR_KEYS):
            return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in sd.items()}
    return dict(sd)


def drop_markers(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop flag tensors and fp8 input scales (used only by fp8 matmul kernels), and name weight
    scales the one way the model does (`scale_weight`)."""
    out = {}
    for key, value in sd.items():
        if key in MARKER_KEYS or key.endswith(".scale_input"):
            continue
        out[key[: -len("weight_scale")] + "scale_weight" if key.endswith(".weight_scale") else key] = value
    return out


def read_checkpoint(source: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Every tensor of one source (file, index json or folder), keys in the released layout."""
    merged: dict[str, torch.Tensor] = {}
    for path in expand_sources(source):
        merged.update(read_weight_file(path))
    return drop_markers(strip_prefix(merged))


def read_config_metadata(source: str | os.PathLike) -> dict[str, int]:
    """`num_heads` / `text_len` stored in a safetensors header (`multitalk.num_heads`, ...) by
    files this pack writes for models too small for the 128-wide-head rule (tiny demo weights)."""
    from safetensors import safe_open

    found: dict[str, int] = {}
    for path in expand_sources(source):
        if path.suffix != ".safetensors":
            continue
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
        for name in ("num_heads", "text_len"):
            if f"multitalk.{name}" in meta:
                found[name] = int(meta[f"multitalk.{name}"])
    return found


def describe_keys(keys: Iterable[str], limit: int = 4) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:limit])
    return f"{len(keys)} ({shown}{', ...' if len(keys) > limit else ''})"
