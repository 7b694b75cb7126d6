"""Linear layers whose weights stay GGUF-quantised and are dequantised just in time.

A GGUFLinear keeps the raw GGML blocks as a uint8 parameter under the usual `weight` key (so
state-dict names stay the released ones and `.to(device)` moves the bytes, never a float copy),
and at each forward dequantises them on the input's device to the input's dtype.
"""
from __future__ import annotations

from typing import Mapping, Optional, Union

import torch
import torch.nn.functional as F
from gguf import GGMLQuantizationType
from torch import nn

from ..errors import CheckpointError
from .gguf_dequant import FLOAT_TYPES, dequantize, quantised_nbytes
from .gguf_weight import GGUFWeight

Q = GGMLQuantizationType
_TYPE_OF_DTYPE = {dtype: qtype for qtype, dtype in FLOAT_TYPES.items()}


class GGUFLinear(nn.Module):
    """Drop-in for nn.Linear holding a GGUF-quantised weight (raw bytes) and a float bias."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 bias_dtype: torch.dtype = torch.float32, device: Union[str, torch.device, None] = None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.qtype: GGMLQuantizationType = Q.F32
        self.weight = nn.Parameter(torch.empty(0, dtype=torch.uint8, device=device), requires_grad=False)
        self.bias = nn.Parameter(torch.empty(out_features, dtype=bias_dtype, device=device)) if bias else None

    def _take(self, weight: Union[GGUFWeight, torch.Tensor], name: str) -> torch.Tensor:
        """Check the weight fits, remember its type, return its raw bytes. A uint8 tensor is raw
        bytes of this layer's current type (another GGUF model's state dict)."""
        shape = torch.Size((self.out_features, self.in_features))
        if not isinstance(weight, GGUFWeight) and weight.dtype == torch.uint8:
            weight = GGUFWeight(weight, self.qtype, shape) if weight.numel() == _nbytes(self.qtype, shape) else None
            if weight is None:
                raise CheckpointError(f"'{name}' holds raw bytes that are no {self.qtype.name} weight of shape "
                                      f"{tuple(shape)}: load the GGUF file itself instead.")
        raw, qtype, file_shape = _raw_parts(weight)
        if file_shape != shape:
            raise CheckpointError(f"'{name}' has shape {tuple(file_shape)}, but the model's layer is "
                                  f"{self.in_features} -> {self.out_features}: the file does not fit this model.")
        self.qtype = qtype
        return raw

    def dequantized_weight(self, dtype: torch.dtype = torch.float32,
                           device: Union[str, torch.device, None] = None) -> torch.Tensor:
        """The weight [out, in] as `dtype` on `device` (default: where the bytes are)."""
        return dequantize(self.weight, self.qtype, (self.out_features, self.in_features), device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.dequantized_weight(x.dtype, x.device)
        bias = None if self.bias is None else self.bias.to(device=x.device, dtype=x.dtype)
        return F.linear(x, weight, bias)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        # load_state_dict hands each module its own copy of the state dict: swapping the GGUFWeight
        # for its bytes here lets the standard loader check, assign or copy them as usual.
        key = prefix + "weight"
        if key in state_dict:
            raw = self._take(state_dict[key], key)
            self.weight = nn.Parameter(torch.empty_like(raw, device=self.weight.device), requires_grad=False)
            state_dict[key] = raw
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, qtype={self.qtype.name}"


def _raw_parts(weight: Union[GGUFWeight, torch.Tensor]) -> tuple[torch.Tensor, GGMLQuantizationType, torch.Size]:
    """(raw uint8 bytes, GGML type, logical shape) of a GGUFWeight or a float tensor."""
    if isinstance(weight, GGUFWeight):
        return weight.raw, weight.qtype, weight.shape
    if weight.dtype not in _TYPE_OF_DTYPE:
        raise CheckpointError(f"A GGUF layer cannot hold a {weight.dtype} weight; expected GGUF blocks or "
                              "fp32/fp16/bf16 values.")
    return weight.contiguous().reshape(-1).view(torch.uint8), _TYPE_OF_DTYPE[weight.dtype], weight.shape


def _nbytes(qtype: GGMLQuantizationType, shape: torch.Size) -> int:
    return quantised_nbytes(qtype, shape.numel())


def gguf_linear_keys(weights: Mapping[str, object]) -> set[str]:
    """Keys of the quantised 2-D weights: the layers to make GGUFLinear."""
    return {key for key, value in weights.items() if isinstance(value, GGUFWeight) and value.ndim == 2}


def swap_in_gguf_linears(model: nn.Module, quantised_keys: set[str],
                         bias_dtype: Optional[torch.dtype] = None) -> int:
    """Replace every nn.Linear whose `<name>.weight` is in quantised_keys by a GGUFLinear on the
    same device (bias in `bias_dtype`, default the layer's). Returns how many were swapped."""
    swapped = 0
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            full = f"{name}.{child_name}" if name else child_name
            if isinstance(child, nn.Linear) and f"{full}.weight" in quantised_keys:
                has_bias = child.bias is not None
                dtype = bias_dtype or (child.bias.dtype if has_bias else torch.float32)
                setattr(module, child_name, GGUFLinear(child.in_features, child.out_features, has_bias,
                                                       bias_dtype=dtype, device=child.weight.device))
                swapped += 1
    return swapped


def fit_gguf_tensors(model: nn.Module, weights: Mapping[str, Union[torch.Tensor, GGUFWeight]],
                     compute_dtype: torch.dtype) -> dict[str, Union[torch.Tensor, GGUFWeight]]:
    """Shape a read_gguf state dict for `model.load_state_dict(..., assign=True)`.

    GGUFLinear weights stay quantised; quantised tensors of any other slot are dequantised now
    (in compute_dtype); float tensors take compute_dtype. A tensor whose file shape differs from
    its slot only by size-1 dimensions (e.g. a `modulation` [6, dim] for a [1, 6, dim] slot) is
    reshaped to the slot. Keys the model lacks pass through for the caller's key check.
    """
    slots = model.state_dict(keep_vars=True)
    gguf_layers = {f"{name}.weight" for name, m in model.named_modules() if isinstance(m, GGUFLinear)}
    fitted: dict[str, Union[torch.Tensor, GGUFWeight]] = {}
    for key, value in weights.items():
        if key in gguf_layers:
            fitted[key] = value
            continue
        if isinstance(value, GGUFWeight):
            value = value.dequantize(dtype=compute_dtype)
        elif value.is_floating_point():
            value = value.to(compute_dtype)
        slot = slots.get(key)
        if slot is not None and value.shape != slot.shape and _squeezed(value.shape) == _squeezed(slot.shape):
            value = value.reshape(slot.shape)
        fitted[key] = value
    return fitted


def _squeezed(shape: torch.Size) -> tuple[int, ...]:
    return tuple(d for d in shape if d != 1)
