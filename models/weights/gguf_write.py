"""Write small GGUF files laid out like the real ones, for the tests and the demo.

DiT files follow city96's Wan conversions (architecture "wan", released tensor names, 1-D
tensors, modulation and the 5-D patch embedding in F32, embeddings/head unquantised, block
linears quantised); audio-layer files follow kijai's MultiTalk/InfiniteTalk GGUFs (released
audio key names only). Tensors whose rows do not fit the quant block are stored as rows of one
block with a `comfy.gguf.orig_shape.<name>` array holding the real shape (city96's convention).
"""
from __future__ import annotations

import logging
import os
from typing import Callable, Mapping, Optional, Union

import numpy as np
import torch
from gguf import GGML_QUANT_SIZES, GGML_QUANT_VERSION, GGMLQuantizationType, GGUFWriter, quants

from .gguf import ORIG_SHAPE_KEY
from .gguf_kquants import ENCODERS as K_ENCODERS
from .gguf_kquants import quantize_k

log = logging.getLogger(__name__)
Q = GGMLQuantizationType
QTypeRule = Callable[[str, torch.Tensor], GGMLQuantizationType]

# Never quantised by city96's Wan rules (small, and precision-critical).
UNQUANTISED_PREFIXES = ("patch_embedding.", "text_embedding.", "time_embedding.", "time_projection.",
                        "img_emb.", "head.")
MIXES: dict[str, tuple[GGMLQuantizationType, GGMLQuantizationType]] = {
    # mix name: (most block linears, attention v and ffn.2 down-projections)
    "Q8_0": (Q.Q8_0, Q.Q8_0), "Q5_0": (Q.Q5_0, Q.Q5_1), "Q4_0": (Q.Q4_0, Q.Q4_1),
    "Q6_K": (Q.Q6_K, Q.Q6_K), "Q5_K_M": (Q.Q5_K, Q.Q6_K), "Q4_K_M": (Q.Q4_K, Q.Q6_K)}


def city96_qtype_rule(mix: str = "Q8_0") -> QTypeRule:
    """The tensor types city96's Wan files use for `mix` (e.g. "Q4_K_M")."""
    if mix not in MIXES:
        raise ValueError(f"Unknown GGUF mix '{mix}'; choose one of {', '.join(MIXES)}.")
    main, sensitive = MIXES[mix]

    def rule(key: str, tensor: torch.Tensor) -> GGMLQuantizationType:
        if tensor.dim() != 2:
            return Q.F32
        if key.startswith(UNQUANTISED_PREFIXES):
            return Q.F16
        qtype = sensitive if key.endswith((".v.weight", ".ffn.2.weight")) else main
        if tensor.shape[-1] % GGML_QUANT_SIZES[qtype][0]:
            return Q.F16  # llama-quantize's fallback for rows that do not fit the blocks
        return qtype

    return rule


def write_tiny_gguf(state_dict: Mapping[str, torch.Tensor], path: Union[str, os.PathLike], qtype_for: QTypeRule,
                    *, arch: Optional[str] = "wan", prefix: str = "",
                    metadata: Optional[Mapping[str, Union[str, int]]] = None) -> str:
    """Write `state_dict` as a GGUF file, each tensor in the type `qtype_for(key, tensor)` picks.

    arch: `general.architecture` (None writes none). prefix: prepended to every tensor name
    (e.g. "model.diffusion_model."). metadata: extra string/int key-value pairs.
    """
    name = os.fspath(path)
    writer = GGUFWriter(name, arch=arch or "")
    if arch is None:
        writer.kv_data[0].pop("general.architecture", None)
    writer.add_quantization_version(GGML_QUANT_VERSION)
    for key, value in (metadata or {}).items():
        writer.add_string(key, value) if isinstance(value, str) else writer.add_uint32(key, int(value))
    for key in sorted(state_dict):
        tensor = state_dict[key]
        data, qtype, orig_shape = _encode(tensor.detach().float().cpu().numpy(), qtype_for(key, tensor))
        if orig_shape is not None:
            writer.add_array(ORIG_SHAPE_KEY + prefix + key, list(orig_shape))
        writer.add_tensor(prefix + key, data, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return name


def _encode(values: np.ndarray, qtype: GGMLQuantizationType) -> tuple[np.ndarray, GGMLQuantizationType,
                                                                      Optional[tuple[int, ...]]]:
    """(data for GGUFWriter, its type, original shape when the data was reshaped to block rows)."""
    if qtype == Q.F32:
        return values.astype(np.float32), qtype, None
    if qtype == Q.F16:
        return values.astype(np.float16), qtype, None
    if qtype == Q.BF16:
        return quants.quantize(values, qtype), qtype, None
    block_size = GGML_QUANT_SIZES[qtype][0]
    orig_shape = None
    if values.ndim != 2 or values.shape[-1] % block_size:
        if values.size % block_size:
            log.info("%d values do not fill %s blocks: stored as F16", values.size, qtype.name)
            return values.astype(np.float16), Q.F16, None
        orig_shape, values = values.shape, values.reshape(-1, block_size)
    data = quantize_k(values, qtype) if qtype in K_ENCODERS else quants.quantize(values, qtype)
    return data, qtype, orig_shape
