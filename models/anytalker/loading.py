"""`load_anytalker`: an AnyTalker checkpoint (released `.pth` or a safetensors conversion) -> AnyTalkerDiT.

The released files hold the whole DiT: `torch.save({"model": state_dict})` with exactly the
official WanModel keys (FACTS.md §2). The model is built on the meta device and the file's
tensors are assigned into it strictly, so a 14B checkpoint is never held twice.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence, Union

import torch

from ..dit.keys import wrapper_prefix
from ..encoders.kinds import describe as describe_kind
from ..errors import CheckpointError
from ..weights import CanonicalWeights, as_dtype, open_weights, weights_of
from .config import infer_anytalker_config
from .family import ANYTALKER_FAMILIES, check_combination, describe_family, detect_family
from .model import AnyTalkerDiT

logger = logging.getLogger(__name__)

Source = Union[str, os.PathLike, Mapping[str, torch.Tensor]]
DTYPES = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
          "fp16": torch.float16, "float16": torch.float16}
_METADATA_KEYS = {"num_heads": ("anytalker.num_heads", "multitalk.num_heads"),
                  "text_len": ("anytalker.text_len", "multitalk.text_len")}


@dataclass
class OpenedWeights:
    """One source through the pack's shared weight reader: lazy tensors under released names."""

    weights: CanonicalWeights
    keys: dict[str, str]  # released name -> canonical key of `weights`

    def metas(self) -> dict[str, torch.Tensor]:
        """Shapes and dtypes without reading a tensor."""
        return {name: self.weights.meta(key) for name, key in self.keys.items()}

    def read(self, name: str, dtype: Optional[torch.dtype]) -> torch.Tensor:
        return as_dtype(self.weights, self.keys[name], dtype)


def read_weights(source: Source) -> OpenedWeights:
    """One source (released `.pth` with its {"model": ...} wrapper, safetensors, a state dict)
    opened lazily by the pack's one weight reader, with a ComfyUI prefix removed."""
    weights = weights_of(source) if isinstance(source, Mapping) else open_weights(source, describe=describe_kind)
    prefix = wrapper_prefix(weights.keys())
    return OpenedWeights(weights, {k[len(prefix):]: k for k in weights.keys()
                                   if k.startswith(prefix) and not k.endswith(".scale_weight")})


def sources_family(base: Source, audio: Optional[Source] = None) -> str:
    """The family a base file and an optional audio-layer file make (keys only, no tensor is read),
    or a CheckpointError for a combination that cannot load (see check_combination)."""
    base_family = detect_family(read_weights(base).keys)
    audio_family = detect_family(read_weights(audio).keys) if audio is not None else None
    return check_combination(base_family, audio_family, _name(base), _name(audio) if audio is not None else "")


def _name(source: Source) -> str:
    return "<state dict>" if isinstance(source, Mapping) else os.fspath(source)


def _dtype(dtype: Union[str, torch.dtype, None], state: Mapping[str, torch.Tensor]) -> torch.dtype:
    if dtype is None:
        stored = state["patch_embedding.weight"].dtype
        return stored if stored in DTYPES.values() else torch.bfloat16  # fp8 files compute in bf16
    if isinstance(dtype, torch.dtype) and dtype in DTYPES.values():
        return dtype
    if isinstance(dtype, str) and dtype in DTYPES:
        return DTYPES[dtype]
    raise CheckpointError(f"dtype {dtype!r} is not supported for AnyTalker; choose fp32, bf16 or fp16.")


def load_anytalker(source: Union[Source, Sequence[Source]], dtype: Union[str, torch.dtype, None] = None,
                   device: Union[str, torch.device, None] = None, *, num_heads: Optional[int] = None,
                   text_len: Optional[int] = None, attention: str = "auto") -> AnyTalkerDiT:
    """Load an AnyTalker DiT (1.3B `a2v_af` or 14B legacy; the variant is read off the keys).

    Args:
        source: the checkpoint file (.pth as released, or .safetensors) or a state dict. A list
            with a second (audio) file is refused: AnyTalker checkpoints carry their own audio layers.
        dtype: "fp32" | "bf16" | "fp16" (None keeps the file's dtype).
        device: where the model goes (default CPU).
        num_heads / text_len: for models off the Wan sizes (tiny tests); else 128-wide heads and 512.
        attention: attention backend name (see models.dit.attention).
    """
    parts = list(source) if isinstance(source, (list, tuple)) else [source]
    if not parts:
        raise CheckpointError("No weights given: pass the AnyTalker checkpoint (.pth or .safetensors).")
    opened = read_weights(parts[0])
    family = detect_family(opened.keys)
    if len(parts) > 1:
        extra = [detect_family(read_weights(part).keys) for part in parts[1:]]
        check_combination(family, extra[0], _name(parts[0]), _name(parts[1]))
    if family not in ANYTALKER_FAMILIES:
        raise CheckpointError(f"'{_name(parts[0])}' is {describe_family(family)}, not an AnyTalker checkpoint: "
                              "load it with the MultiTalk model loader.")
    metas, metadata = opened.metas(), opened.weights.metadata
    num_heads = num_heads or _stored_int(metadata, "num_heads")
    config = infer_anytalker_config(metas, num_heads=num_heads, text_len=text_len or _stored_int(metadata, "text_len"))
    compute = _dtype(dtype, metas)
    with torch.device("meta"):
        model = AnyTalkerDiT(config, attention=attention)
    _check_keys(model, metas, _name(parts[0]))
    state = {name: opened.read(name, compute) for name in opened.keys}  # one tensor at a time, cast on the way
    model.load_state_dict(state, strict=True, assign=True)
    logger.info("Loaded %s (%d layers, width %d) from %s", describe_family(family), config.dit.num_layers,
                config.dit.dim, _name(parts[0]))
    return model.to(device or "cpu").eval().requires_grad_(False)


def _stored_int(metadata: Mapping[str, str], field: str) -> Optional[int]:
    for key in _METADATA_KEYS[field]:
        if key in metadata:
            return int(metadata[key])
    return None


def _check_keys(model: AnyTalkerDiT, state: Mapping[str, torch.Tensor], name: str) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if tuple(expected[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"'{name}' does not match the {model.family} model read from it (missing: {missing[:4]}, unexpected: "
            f"{unexpected[:4]}, wrong shapes: {wrong[:4]}): the file is partial or from another model version.")
