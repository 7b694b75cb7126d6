"""Opening one weights file of any supported format, lazily where the format allows.

- safetensors: `safe_open`, one tensor read per access; shapes and dtypes from the header.
- .pt / .pth / .bin / .ckpt zip checkpoints: `torch.load(weights_only=True, mmap=True)`, so
  tensors stay in the page cache until used; legacy (non-zip) files cannot be memory-mapped and
  are read whole, still with `weights_only=True`.
- .gguf: the GGUF reader of this package (`gguf.py`), imported only when a GGUF file is opened.

Every failure names the file and says whether it is unreadable, truncated or of another kind.
"""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Mapping, Optional, Union

import torch

from ..errors import CheckpointError, MultiTalkError
from .sources import GGUF_SUFFIXES, SAFETENSORS_SUFFIXES, ErrorType

# safetensors header dtype names (the format's spec) -> torch dtypes
_SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool, "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
    "U16": torch.uint16, "U32": torch.uint32, "U64": torch.uint64, "C64": torch.complex64,
}
_WRAPPERS = ("state_dict", "model", "module")  # training checkpoints nest the weights under these


class DictTensors:
    """Tensors already in memory (or memory-mapped): a state dict, a .pth file, a GGUF file."""

    def __init__(self, name: str, tensors: Mapping[str, object], metadata: Optional[dict[str, str]] = None):
        self.name, self._tensors, self.metadata = name, tensors, metadata or {}

    def keys(self) -> list[str]:
        return list(self._tensors.keys())

    def read(self, key: str):
        return self._tensors[key]

    meta = read  # shape and dtype are free here


class SafetensorsFile:
    """One safetensors file read one tensor at a time."""

    def __init__(self, path: Path, error: ErrorType = CheckpointError):
        from safetensors import safe_open

        self.name, self._error = str(path), error
        try:
            self._handle = safe_open(str(path), framework="pt", device="cpu")
            self._keys = list(self._handle.keys())
            self.metadata = self._handle.metadata() or {}
        except Exception as exc:  # SafetensorError and OSError, with the Rust reader's wording
            raise error(f"Cannot read '{path}' as safetensors ({exc}): the file is truncated (an unfinished "
                        "download) or not a safetensors file. Download it again.") from None

    def keys(self) -> list[str]:
        return list(self._keys)

    def read(self, key: str) -> torch.Tensor:
        try:
            return self._handle.get_tensor(key)
        except Exception as exc:
            raise self._error(f"Cannot read tensor '{key}' of '{self.name}' ({exc}): the file is damaged or "
                              "truncated. Download it again.") from None

    def meta(self, key: str) -> torch.Tensor:
        piece = self._handle.get_slice(key)
        dtype = _SAFETENSORS_DTYPES.get(piece.get_dtype())
        if dtype is None:
            raise self._error(f"'{self.name}' stores '{key}' as {piece.get_dtype()}, a type this pack cannot use.")
        return torch.empty(piece.get_shape(), dtype=dtype, device="meta")


def _damaged(path: Path, detail: str) -> str:
    return (f"Cannot read '{path}' as a PyTorch checkpoint ({detail}): the file is truncated or damaged. "
            "Download it again.")


def _load_torch(path: Path, error: ErrorType) -> dict:
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic == b"PK\x03\x04":  # zip checkpoint (torch >= 1.6): memory-mapped
        if not zipfile.is_zipfile(path):  # no central directory at the end
            raise error(_damaged(path, "no zip directory at its end"))
        load_kwargs = {"mmap": True}
    elif magic[:1] == b"\x80":  # legacy pickle stream: cannot be memory-mapped
        load_kwargs = {}
    else:
        raise error(f"'{path}' is not a PyTorch checkpoint (nor a zip archive or pickle stream). "
                    "Check that the file is the model you meant.")
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True, **load_kwargs)
    except pickle.UnpicklingError as exc:
        raise error(f"'{path}' holds Python objects besides tensors, which are not loaded for safety "
                    f"(weights_only): {str(exc).splitlines()[0]}. Use a .safetensors version of the file.") from None
    except Exception as exc:  # torch raises many types for damaged zips and pickles
        raise error(_damaged(path, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)) from None


def open_torch(path: Path, error: ErrorType = CheckpointError) -> DictTensors:
    data = _load_torch(path, error)
    for wrapper in _WRAPPERS:
        if isinstance(data, dict) and isinstance(data.get(wrapper), dict):
            data = data[wrapper]
    if not isinstance(data, dict) or not all(torch.is_tensor(v) for v in data.values()):
        raise error(f"'{path}' holds no plain state dict of tensors (found {type(data).__name__}). "
                    "Use the model's weights file, not a training checkpoint or a pipeline.")
    return DictTensors(str(path), data)


def open_gguf(path: Path, error: ErrorType = CheckpointError) -> DictTensors:
    try:
        from .gguf import read_gguf
    except ModuleNotFoundError as exc:
        if exc.name != f"{__package__}.gguf":
            raise error(f"Reading '{path}' needs the Python package '{exc.name}': pip install {exc.name}.") from None
        raise error(f"'{path}' is a GGUF file, which this version of the pack cannot read yet. "
                    "Use a .safetensors file of the model (bf16, fp16 or fp8).") from None
    return DictTensors(str(path), read_gguf(path))


def open_file(path: Path, error: ErrorType = CheckpointError) -> Union[SafetensorsFile, DictTensors]:
    """A checked weights file -> its tensors; errors of the readers come back as `error`."""
    suffix = path.suffix.lower()
    opener = SafetensorsFile if suffix in SAFETENSORS_SUFFIXES else open_gguf if suffix in GGUF_SUFFIXES else open_torch
    try:
        return opener(path, error)
    except MultiTalkError as exc:  # e.g. the GGUF reader's CheckpointError for an encoder file
        if isinstance(exc, error):
            raise
        raise error(str(exc)) from None
