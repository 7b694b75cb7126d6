"""From canonical weights to a loaded torch module, for models that compute in one dtype.

`dequantized` casts tensors (fp8 times its scale, GGUF blocks unpacked) on the way in; a model
built under `empty_weights()` (parameters on the meta device, buffers real) then takes them with
`materialize` (strict, `assign=True`: no copy, no random init of billions of parameters).
Non-persistent buffers (e.g. CLIP's `position_ids`) are computed by the model's constructor;
files that carry them anyway have those tensors dropped before the strict load.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Callable, Iterator, Mapping, Optional

import torch
from torch import nn

from ..errors import CheckpointError
from .fp8 import dequantize_fp8, is_fp8
from .layouts import sample
from .sources import ErrorType

log = logging.getLogger(__name__)


def as_dtype(weights: Mapping, key: str, dtype: Optional[torch.dtype]) -> torch.Tensor:
    """One tensor of canonical weights in `dtype` (None: floating tensors keep theirs, fp8 -> fp32)."""
    value = weights[key]
    if not isinstance(value, torch.Tensor):  # a GGUF weight: unpacked here
        return value.dequantize(torch.device("cpu"), dtype or torch.float32)
    if is_fp8(value):
        scale_key = (key[: -len(".weight")] if key.endswith(".weight") else key) + ".scale_weight"
        return dequantize_fp8(value, weights[scale_key] if scale_key in weights else None, dtype or torch.float32)
    if dtype is not None and value.is_floating_point() and value.dtype != dtype:
        return value.to(dtype)
    return value


def dequantized(weights: Mapping, dtype: Optional[torch.dtype] = None,
                keep: Optional[Callable[[str], bool]] = None) -> Iterator[tuple[str, torch.Tensor]]:
    """(key, tensor in dtype) for the keys `keep` accepts; scales are consumed, skipped keys never read."""
    for key in weights.keys():
        if key.endswith(".scale_weight") or (keep is not None and not keep(key)):
            continue
        yield key, as_dtype(weights, key, dtype)


@contextmanager
def empty_weights() -> Iterator[None]:
    """Build modules with parameters on the meta device and buffers on the CPU, so buffers that
    files do not hold keep the values the constructor computes."""
    register = nn.Module.register_parameter

    def register_on_meta(module: nn.Module, name: str, param: Optional[nn.Parameter]) -> None:
        register(module, name, param)
        if param is not None and not param.is_meta:
            module._parameters[name] = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)

    nn.Module.register_parameter = register_on_meta
    try:
        yield
    finally:
        nn.Module.register_parameter = register


def non_persistent_buffers(model: nn.Module) -> set[str]:
    persistent = set(model.state_dict().keys())
    return {name for name, _ in model.named_buffers() if name not in persistent}


def materialize(model: nn.Module, state: Mapping[str, torch.Tensor], what: str,
                error: ErrorType = CheckpointError, source: str = "") -> nn.Module:
    """Load `state` strictly into a model built under `empty_weights()`, without copying."""
    skipped = non_persistent_buffers(model) & set(state)
    if skipped:
        log.debug("%s: dropped file tensors of non-persistent buffers %s", what, sorted(skipped))
    state = {k: v for k, v in state.items() if k not in skipped}
    expected = set(model.state_dict().keys())
    missing, unexpected = expected - set(state), set(state) - expected
    where = f" in '{source}'" if source else ""
    if missing or unexpected:
        parts = ([f"missing {sample(missing)}"] if missing else []) + ([f"unexpected {sample(unexpected)}"]
                                                                       if unexpected else [])
        raise error(f"The {what} weights{where} do not fit the model read from them: {'; '.join(parts)}. "
                    "The file is partial, or of another model.")
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:  # shape mismatches
        raise error(f"The {what} weights{where} do not fit the model read from them: "
                    f"{str(exc).splitlines()[-1].strip()}") from None
    left = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if left:
        raise error(f"The {what} model still lacks values for {sample(left)} after loading{where}.")
    return model.eval().requires_grad_(False)
