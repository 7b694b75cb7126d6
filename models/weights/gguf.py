"""Read GGUF weight files (city96's Wan2.1 DiT quantisations, kijai's MultiTalk/InfiniteTalk
audio-layer files) into the released key layout, keeping quantised tensors quantised.

Facts of the format as these files use it:
- tensor names are the released Wan names (`blocks.0.self_attn.q.weight`); some writers prefix
  them (`model.diffusion_model.`), which is stripped here;
- GGUF stores dimensions innermost first: the torch shape is the reversed GGUF shape, unless
  a `comfy.gguf.orig_shape.<name>` metadata array (city96's converter, for tensors reshaped
  to rows of 256 before quantising) records it;
- city96's Wan files say `general.architecture = "wan"`; only 2-D weights are quantised, 1-D
  tensors and `modulation` stay F32, the 5-D patch embedding F32, embeddings/head F16/BF16.
"""
from __future__ import annotations

import logging
import os
import re
from collections import Counter
from typing import Optional, Union

import numpy as np
import torch
from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType

from ..errors import CheckpointError
from .gguf_dequant import FLOAT_TYPES, SUPPORTED_TYPES, describe_type, supported_type_names
from .gguf_weight import GGUFWeight

log = logging.getLogger(__name__)

PREFIXES = ("model.diffusion_model.", "diffusion_model.", "model.")
ORIG_SHAPE_KEY = "comfy.gguf.orig_shape."
GGUF_MAGIC = b"GGUF"
WAN_ARCHITECTURES = {"wan"}
COMPAT_ARCHITECTURES = {None, "pig"}  # no architecture (sd.cpp) or gguf-connector's generic tag
_AUDIO_KEY = re.compile(r"^(audio_proj\.|blocks\.\d+\.(audio_cross_attn|norm_x)\.)")
_WAN_KEY = re.compile(r"^(patch_embedding\.|blocks\.\d+\.(self_attn|cross_attn|ffn|modulation))")


def read_gguf(path: Union[str, os.PathLike]) -> dict[str, Union[torch.Tensor, GGUFWeight]]:
    """GGUF file -> {released key: tensor or GGUFWeight}.

    F32/F16/BF16 tensors come back as ordinary (memory-mapped) torch tensors in their real
    shapes; quantised ones as GGUFWeight holding the raw block bytes, never dequantised here.
    The file is mapped copy-on-write, so nothing done to the tensors can change it.
    """
    name = os.fspath(path)
    reader = _open(name)
    tensors = [(_strip_prefix(t.name), t) for t in reader.tensors]
    _check_architecture(reader, [key for key, _ in tensors], name)
    _check_types(tensors, name)
    out: dict[str, Union[torch.Tensor, GGUFWeight]] = {}
    for key, tensor in tensors:
        out[key] = _to_torch(tensor, _logical_shape(reader, tensor, name))
    counts = Counter(tensor.tensor_type.name for tensor in reader.tensors)
    log.info("%s: GGUF tensor types %s", name, ", ".join(f"{k} x{v}" for k, v in sorted(counts.items())))
    return out


def _open(name: str) -> GGUFReader:
    if not os.path.isfile(name):
        raise CheckpointError(f"GGUF file '{name}' does not exist: check the path or pick the file again.")
    try:
        return GGUFReader(name, mode="c")  # copy-on-write: the user's file is never written
    except Exception as exc:  # the gguf package raises ValueError, IndexError, struct errors...
        reason = f"{type(exc).__name__}: {exc}"
    with open(name, "rb") as handle:
        magic = handle.read(4)
    if magic == GGUF_MAGIC:
        raise CheckpointError(f"'{name}' is a truncated or damaged GGUF file ({reason}): download it again.")
    raise CheckpointError(f"'{name}' is not a GGUF file (it starts with {magic!r}, not b'GGUF'): choose a .gguf "
                          "model file, or load safetensors files through the regular loader.")


def _strip_prefix(key: str) -> str:
    for prefix in PREFIXES:
        if key.startswith(prefix):
            return key[len(prefix):]
    return key


def _string_field(reader: GGUFReader, key: str) -> Optional[str]:
    field = reader.get_field(key)
    if field is None or field.types != [GGUFValueType.STRING]:
        return None
    return str(field.contents())


def _check_architecture(reader: GGUFReader, keys: list[str], name: str) -> None:
    """Accept city96's "wan" files, audio-only MultiTalk/InfiniteTalk files (whatever their tag:
    the audio layer names exist in no other family) and untagged files with Wan tensor names."""
    arch = _string_field(reader, "general.architecture")
    if keys and all(_AUDIO_KEY.match(k) for k in keys):
        return
    if arch in WAN_ARCHITECTURES or (arch in COMPAT_ARCHITECTURES and any(_WAN_KEY.match(k) for k in keys)):
        if arch != "wan":
            log.warning("%s has general.architecture %r; reading it as a Wan DiT from its tensor names.", name, arch)
        return
    example = ", ".join(keys[:3]) or "no tensors"
    what = f"general.architecture '{arch}'" if arch else "no general.architecture"
    raise CheckpointError(
        f"'{name}' is a GGUF file with {what} (tensors: {example}), not a Wan2.1 DiT or MultiTalk/"
        "InfiniteTalk audio layers. Choose a Wan2.1-I2V-14B GGUF (e.g. city96's "
        "wan2.1-i2v-14b-480p-Q4_K_M.gguf) or kijai's InfiniteTalk/MultiTalk GGUF.")


def _check_types(tensors: list, name: str) -> None:
    bad = [(key, t.tensor_type) for key, t in tensors if t.tensor_type not in SUPPORTED_TYPES]
    if bad:
        listed = ", ".join(f"'{key}' ({describe_type(qtype)})" for key, qtype in bad[:3])
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise CheckpointError(
            f"'{name}' holds tensors in GGUF types this pack cannot decode: {listed}{more}. Supported types: "
            f"{supported_type_names()}. Use a file quantised to one of those (e.g. Q8_0, Q5_K_M, Q4_K_M).")


def _logical_shape(reader: GGUFReader, tensor, name: str) -> torch.Size:
    shape = torch.Size(int(d) for d in reversed(tensor.shape.tolist()))
    field = reader.get_field(ORIG_SHAPE_KEY + tensor.name)
    if field is None:
        return shape
    if field.types != [GGUFValueType.ARRAY, GGUFValueType.INT32]:
        raise CheckpointError(f"'{name}': metadata '{field.name}' should be an array of int32 "
                              f"(the tensor's original shape), found {[t.name for t in field.types]}.")
    orig = torch.Size(int(d) for d in field.contents())
    if orig.numel() != shape.numel():
        raise CheckpointError(f"'{name}': '{field.name}' gives shape {tuple(orig)} ({orig.numel()} values) but "
                              f"the tensor holds {shape.numel()} values: the file is damaged; download it again.")
    return orig


def _to_torch(tensor, shape: torch.Size) -> Union[torch.Tensor, GGUFWeight]:
    data = torch.from_numpy(np.asarray(tensor.data))  # a view of the copy-on-write mapping
    qtype = GGMLQuantizationType(tensor.tensor_type)
    if qtype in FLOAT_TYPES:
        # BF16 arrives as bytes (numpy has no bfloat16); F32/F16 as values.
        return data.reshape(-1).view(torch.uint8).view(FLOAT_TYPES[qtype]).reshape(shape)
    return GGUFWeight(data, qtype, shape)
