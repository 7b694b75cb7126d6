"""Reading weight files for the encoders: lazily, with dtype casts and fp8 dequantisation.

Real files are large (umt5-xxl is ~11 GB in bf16), so tensors are read one at a time
(safetensors `safe_open`, `torch.load(mmap=True)` for .pth) and cast on the way in; a
model built on the meta device then takes them with `load_state_dict(assign=True)`, so a
file is never held twice in memory.
"""
from __future__ import annotations

import os
from typing import Callable, Iterator, Mapping

import torch

from ..errors import EncoderInputError

FP8_DTYPES = tuple(
    getattr(torch, name) for name in ("float8_e4m3fn", "float8_e5m2") if hasattr(torch, name)
)
# Per-tensor scales stored beside fp8 weights ("scaled fp8" files) and markers to drop.
_SCALE_SUFFIXES = (".scale_weight", ".weight_scale")
_DROP_SUFFIXES = (".scale_input", ".input_scale", ".comfy_quant")
_DROP_KEYS = {"scaled_fp8"}

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class LazyWeights(Mapping):
    """A read-only mapping key -> tensor over a weights file, reading each tensor on access."""

    def __init__(self, path: str):
        self.path = path
        if not os.path.isfile(path):
            raise EncoderInputError(f"Weights file '{path}' does not exist.")
        self._handle = None
        self._dict: dict | None = None
        if path.endswith(".safetensors"):
            self._keys = self._open_safetensors()
        else:
            self._dict = _torch_load(path)
            self._keys = list(self._dict.keys())
        self._key_set = set(self._keys)

    def _open_safetensors(self) -> list[str]:
        from safetensors import safe_open

        try:
            self._handle = safe_open(self.path, framework="pt", device="cpu")
        except Exception as exc:  # truncated or not a safetensors file
            raise EncoderInputError(
                f"Cannot read '{self.path}' as safetensors ({exc}). Re-download the file."
            ) from exc
        return list(self._handle.keys())

    def __getitem__(self, key: str) -> torch.Tensor:
        if self._handle is not None:
            if key not in self._key_set:
                raise KeyError(key)
            return self._handle.get_tensor(key)
        return self._dict[key]

    def __contains__(self, key: object) -> bool:  # without reading the tensor
        return key in self._key_set

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


def _torch_load(path: str) -> dict:
    """A .pth/.pt/.bin state dict, memory-mapped where the file format allows it."""
    try:
        try:
            data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # old (non-zip) serialisation cannot be memory-mapped
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise EncoderInputError(
            f"Cannot read '{path}' as a PyTorch weights file ({exc}). Use a .safetensors or "
            ".pth state dict."
        ) from exc
    for wrapper in ("state_dict", "model", "module"):
        if isinstance(data, dict) and isinstance(data.get(wrapper), dict):
            data = data[wrapper]
    if not isinstance(data, dict) or not all(torch.is_tensor(v) for v in data.values()):
        raise EncoderInputError(f"'{path}' does not hold a plain state dict of tensors.")
    return data


def dequantized(weights: Mapping[str, torch.Tensor], dtype: torch.dtype,
                keep: Callable[[str], bool] | None = None) -> Iterator[tuple[str, torch.Tensor]]:
    """(key, tensor cast to dtype) for the keys `keep` accepts, fp8 weights times their scale.

    Scale tensors and fp8 markers are consumed here and not yielded; skipped keys are never read.
    """
    keys = set(weights.keys())
    for key in weights.keys():
        if key in _DROP_KEYS or key.endswith(_DROP_SUFFIXES + _SCALE_SUFFIXES):
            continue
        if keep is not None and not keep(key):
            continue
        tensor = weights[key]
        if tensor.dtype in FP8_DTYPES:
            tensor = tensor.to(torch.float32) * _scale_for(key, tensor.ndim, weights, keys)
        if tensor.is_floating_point() and tensor.dtype != dtype:
            tensor = tensor.to(dtype)
        yield key, tensor


def _scale_for(key: str, ndim: int, weights: Mapping[str, torch.Tensor], keys: set) -> torch.Tensor:
    base = key[: -len(".weight")] if key.endswith(".weight") else key
    for suffix in _SCALE_SUFFIXES:
        if base + suffix in keys:
            scale = weights[base + suffix].to(torch.float32)
            # A per-output-channel scale [out] must broadcast over [out, in, ...].
            return scale.reshape(-1, *([1] * (ndim - 1))) if scale.numel() > 1 else scale
    return torch.ones((), dtype=torch.float32)


def sample_keys(keys, n: int = 4) -> str:
    """A few key names for an error message."""
    keys = sorted(keys)
    shown = ", ".join(f"'{k}'" for k in keys[:n])
    more = f" (and {len(keys) - n} more)" if len(keys) > n else ""
    return shown + more


def materialize(model: torch.nn.Module, state: dict[str, torch.Tensor], what: str,
                fix_buffers: Callable[[torch.nn.Module], None] | None = None) -> torch.nn.Module:
    """Load `state` into a model built on the meta device, without copying the tensors."""
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        raise EncoderInputError(f"The {what} weights do not fit the inferred model: {exc}") from exc
    if fix_buffers is not None:
        fix_buffers(model)
    left = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if left:
        raise EncoderInputError(f"The {what} file lacks tensors for {sample_keys(left)}.")
    return model.eval().requires_grad_(False)
