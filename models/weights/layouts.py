"""Quantisation layouts of weight files, normalised in one place to the canonical form.

Layouts met in real files (facts from ComfyUI's comfy/utils.py, ops.py and quant_ops.py):
- older ComfyUI scaled fp8: a `scaled_fp8` marker tensor, `<layer>.scale_weight` (float32,
  weight = fp8 * scale) and `<layer>.scale_input` (activation scale for fp8 matmuls);
- current ComfyUI: `<layer>.comfy_quant`, a uint8 tensor holding UTF-8 JSON such as
  {"format": "float8_e4m3fn"}, or the same per-layer JSON in the safetensors metadata key
  `_quantization_metadata` ({"layers": {layer: {...}}}); fp8 formats store
  `<layer>.weight_scale` (float32) and optionally `<layer>.input_scale`; other formats
  (nvfp4, mxfp8, int8_tensorwise, convrot_w4a4, asym_w4a8_int8, awq_w4a16) pack weights in
  ways this pack does not compute;
- plain fp8: fp8 weights and no scales (scale 1);
- optimum-quanto (MeiGen's quant_models/*): `<layer>.weight._data` (int8) +
  `<layer>.weight._scale` and a quantization-map json: refused.

Canonical form: fp8 `<layer>.weight` + float32 `<layer>.scale_weight` (scalar or [out]);
markers, comfy_quant tags and input scales are dropped.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Iterator, Mapping, Optional

import torch

from ..errors import CheckpointError
from .fp8 import dequantize_fp8, is_fp8, max_magnitude
from .sources import ErrorType

FP8_FORMATS = ("float8_e4m3fn", "float8_e5m2")
_MARKER = "scaled_fp8"
_SCALE_SUFFIXES = (".scale_weight", ".weight_scale")
_DROPPED_SUFFIXES = (".comfy_quant", ".scale_input", ".input_scale")
_QUANTO_SUFFIXES = (".weight._data", ".weight._scale")
_MAGNITUDE_CHECKS = 4  # plain fp8 weights checked for stripped scales (see _check_magnitude)
QUANTO_HINT = ("Use the original bf16 files instead (Wan2.1-I2V-14B-480P's diffusion_pytorch_model-*.safetensors "
               "with multitalk.safetensors, models_t5_umt5-xxl-enc-bf16.pth) or ComfyUI's fp8 repacks "
               "(e.g. wan2.1_i2v_480p_14B_fp8_scaled.safetensors, umt5_xxl_fp8_e4m3fn_scaled.safetensors).")


def sample(keys, n: int = 4) -> str:
    """A count and the first few names, for error messages."""
    keys = sorted(keys)
    shown = ", ".join(f"'{k}'" for k in keys[:n])
    return f"{len(keys)} ({shown}{', ...' if len(keys) > n else ''})"


@dataclass(frozen=True)
class _Entry:
    raw: str  # the file's key
    scale: Optional[str] = None  # a scale folded into a non-fp8 weight on reading
    is_scale: bool = False  # a weight scale, renamed `scale_weight` and made float32
    check_magnitude: bool = False  # an fp8 weight of a file without any scales


def _is_marker(key: str) -> bool:
    return key == _MARKER or key.endswith("." + _MARKER)


def _layer(key: str) -> str:
    return key[: -len(".weight")] if key.endswith(".weight") else key


def _tag(raw, key: str, error: ErrorType) -> dict:
    try:
        conf = json.loads(raw.read(key).to(torch.uint8).numpy().tobytes().decode("utf-8"))
        return conf if isinstance(conf, dict) else {"format": conf}
    except (ValueError, TypeError, RuntimeError) as exc:
        raise error(f"'{raw.name}': the quantisation tag '{key}' is not the JSON ComfyUI writes ({exc}). "
                    "The file is damaged; download it again.") from None


def layer_formats(raw, error: ErrorType) -> dict[str, str]:
    """layer -> ComfyUI quantisation format, from comfy_quant tensors and the file metadata."""
    formats: dict[str, str] = {}
    text = raw.metadata.get("_quantization_metadata")
    if text:
        try:
            formats.update({k: str(v.get("format")) for k, v in json.loads(text)["layers"].items()})
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise error(f"'{raw.name}' has unreadable _quantization_metadata ({exc}). "
                        "Download the file again.") from None
    for key in raw.keys():
        if key.endswith(".comfy_quant"):
            formats[key[: -len(".comfy_quant")]] = str(_tag(raw, key, error).get("format"))
    return formats


def _refuse_foreign_formats(raw, formats: dict[str, str], error: ErrorType) -> None:
    if any(key.endswith(_QUANTO_SUFFIXES) for key in raw.keys()):
        raise error(f"'{raw.name}' is an optimum-quanto quantised file (int8 weights as '<layer>.weight._data' + "
                    "'._scale', loaded with a quantization-map json, as in MeiGen's quant_models), which this pack "
                    f"cannot compute. {QUANTO_HINT}")
    foreign = {layer: fmt for layer, fmt in formats.items() if fmt not in FP8_FORMATS}
    if foreign:
        layer = sorted(foreign)[0]
        more = f" (and {len(foreign) - 1} more layers)" if len(foreign) > 1 else ""
        raise error(f"'{raw.name}': layer '{layer}' is stored in ComfyUI's '{foreign[layer]}' quantisation{more}, "
                    "which this pack cannot compute (it runs bf16, fp16, fp8 and GGUF weights). Use the "
                    "fp8_scaled or bf16 version of this model.")


class CanonicalWeights(Mapping):
    """Read-only mapping canonical key -> tensor over raw file tensors, read on access.

    `meta(key)` gives shape and dtype without reading; `metadata` the file's string metadata.
    """

    def __init__(self, raw, error: ErrorType = CheckpointError):
        self.raw, self.name, self.metadata, self._error = raw, raw.name, raw.metadata, error
        formats = layer_formats(raw, error)
        _refuse_foreign_formats(raw, formats, error)
        keys = [k for k in raw.keys() if not _is_marker(k) and not k.endswith(_DROPPED_SUFFIXES)]
        scales = {k[: -len(s)]: k for k in keys for s in _SCALE_SUFFIXES if k.endswith(s)}
        scale_keys = set(scales.values())
        metas = {k: raw.meta(k) for k in keys if k not in scale_keys}
        fp8 = {k for k, m in metas.items() if is_fp8(m) and m.numel() > 0}
        self.unscaled_fp8 = sorted(k for k in fp8 if _layer(k) not in scales)
        marked = any(_is_marker(k) for k in raw.keys())
        self._check_scales(marked, formats, scales, fp8, metas)
        self._entries: dict[str, _Entry] = {}
        self._unchecked = _MAGNITUDE_CHECKS
        for key in metas:
            scale = scales.get(_layer(key)) if key.endswith(".weight") else None
            if scale is not None and key in fp8:
                self._entries[key] = _Entry(key)
                self._entries[_layer(key) + ".scale_weight"] = _Entry(scale, is_scale=True)
            else:
                self._entries[key] = _Entry(key, scale=scale, check_magnitude=key in fp8)

    def _check_scales(self, marked: bool, formats: dict, scales: dict, fp8: set, metas: dict) -> None:
        untyped = sorted(layer + ".weight" for layer in formats if layer + ".weight" in metas
                         and not is_fp8(metas[layer + ".weight"]))
        if untyped:
            raise self._error(f"'{self.name}' tags {sample(untyped)} as fp8, but they are stored as "
                              f"{metas[untyped[0]].dtype}. The file is damaged; download it again.")
        if self.unscaled_fp8 and (marked or formats or scales):
            why = ("ComfyUI's scaled_fp8 marker" if marked else "ComfyUI's comfy_quant tags" if formats
                   else "other layers' scales")
            raise self._error(
                f"'{self.name}' is a scaled fp8 file ({why}), but {sample(self.unscaled_fp8)} fp8 weights have "
                "no scale: loaded as they are they would be hundreds of times too large. The scales were removed "
                "or the file was merged from different files; download the original again, or use the bf16 file.")
        for layer, key in scales.items():
            weight, shape = metas.get(layer + ".weight"), tuple(self.raw.meta(key).shape)
            per_channel = ((weight.shape[0],), (weight.shape[0], 1)) if weight is not None and weight.dim() else ()
            if weight is not None and math.prod(shape) != 1 and shape not in per_channel:
                raise self._error(f"'{self.name}': the scale '{key}' has shape {list(shape)}; only one scale per "
                                  f"tensor or per output channel ({weight.shape[0]}) is supported (block-wise scales "
                                  "are not). Use the fp8_scaled or bf16 version of this model.")

    def __getitem__(self, key: str):
        entry = self._entries[key]
        value = self.raw.read(entry.raw)
        if entry.is_scale:
            return _canonical_scale(value)
        if entry.scale is not None:  # ComfyUI applies a scale whatever the weight's dtype
            return dequantize_fp8(value, _canonical_scale(self.raw.read(entry.scale)), value.dtype)
        if entry.check_magnitude and self._unchecked > 0:
            self._check_magnitude(key, value)
        return value

    def _check_magnitude(self, key: str, value: torch.Tensor) -> None:
        # Scaled fp8 files map each tensor's (or row's) largest weight to the top of the fp8 range;
        # raw weights of these models stay far below half of it. A file stripped of its scales is
        # stripped throughout, so the first few fp8 weights read tell (a full scan of 14B weights
        # would add half a minute).
        top = max_magnitude(value)
        self._unchecked -= 1
        if top >= torch.finfo(value.dtype).max / 2:
            raise self._error(
                f"'{self.name}': the fp8 weight '{key}' reaches |w| = {top:g}, the top of the fp8 range, and the "
                "file holds no scale for it: its scales were removed from a scaled fp8 file, and it would load "
                f"hundreds of times too large. fp8 weights without a scale: {sample(self.unscaled_fp8)}. Use the "
                "original scaled file (with its scale_weight / weight_scale tensors) or the bf16 file.")

    def meta(self, key: str):
        entry = self._entries[key]
        if entry.is_scale:
            return _canonical_scale(self.raw.meta(entry.raw).to("meta"))
        return self.raw.meta(entry.raw)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


def _canonical_scale(scale: torch.Tensor) -> torch.Tensor:
    """float32, a scalar or one value per output channel ([out] or [out, 1] in files)."""
    scale = scale.float()
    return scale.reshape(()) if scale.numel() == 1 else scale.reshape(-1)
