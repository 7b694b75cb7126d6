"""`open_weights`: any weights source -> a lazy mapping in the canonical layout.

The one entry point every loader of the pack uses (DiT, text encoder, CLIP vision, VAE,
wav2vec). Nothing is read until a tensor is asked for, and then only that tensor, so a
model built on the meta device takes the tensors one by one and a file is never held twice.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable, Mapping, Optional, Sequence, Union

import torch

from ..errors import CheckpointError, MultiTalkError
from .formats import DictTensors, open_file
from .layouts import CanonicalWeights
from .sources import ErrorType, PathLike, check_file, folder_sources, shards_from_index, weight_files_in

Describe = Callable[[Iterable[str]], str]


class MergedFiles:
    """The tensors of several files (the shards of one checkpoint) under one key space."""

    def __init__(self, files: Sequence, name: str):
        self.name, self._files = name, list(files)
        self._where = {key: f for f in self._files for key in f.keys()}
        self.metadata: dict[str, str] = {}
        for f in self._files:
            self.metadata.update(f.metadata)

    def keys(self) -> list[str]:
        return list(self._where)

    def read(self, key: str):
        return self._where[key].read(key)

    def meta(self, key: str):
        return self._where[key].meta(key)


def _describe_folder(folder: Path, error: ErrorType, describe: Optional[Describe]) -> str:
    lines = []
    for path in weight_files_in(folder)[:8]:
        try:
            kind = describe(open_file(check_file(path, error), error).keys()) if describe else ""
        except MultiTalkError as exc:  # an unreadable file is listed, not fatal here
            kind = f"unreadable: {exc}"
        lines.append(f"'{path.name}'" + (f" ({kind})" if kind else ""))
    return "; ".join(lines)


def source_files(source: Union[PathLike, Sequence[PathLike]], error: ErrorType = CheckpointError,
                 allow_folder: bool = True, describe: Optional[Describe] = None) -> list[Path]:
    """The checked files a source stands for (see sources.py for the forms a source takes)."""
    if isinstance(source, (list, tuple)):
        return [f for item in source for f in source_files(item, error, allow_folder, describe)]
    path = Path(source).expanduser()
    if path.is_dir() and allow_folder:
        files = folder_sources(path, error)
        if files is None:
            raise error(f"The folder '{path}' holds several unrelated weight files: "
                        f"{_describe_folder(path, error, describe)}. Choose one file instead of the folder.")
        return files
    if path.name.lower().endswith(".json") and path.is_file():
        return shards_from_index(path, error)
    return [check_file(path, error)]


def open_weights(source: Union[PathLike, Sequence[PathLike]], error: ErrorType = CheckpointError,
                 allow_folder: bool = True, describe: Optional[Describe] = None) -> CanonicalWeights:
    """A lazy canonical mapping over a file, a sharded checkpoint or a list of shards.

    Args:
        error: the MultiTalkError subclass to raise (CheckpointError, EncoderInputError, ...).
        allow_folder: accept a folder (a sharded checkpoint or a folder with one file); when False
            a folder is refused with the files it holds.
        describe: keys -> what such a file is, to describe the files of an unrelated folder.
    """
    files = source_files(source, error, allow_folder, describe)
    opened = [open_file(path, error) for path in files]
    name = os.fspath(source) if not isinstance(source, (list, tuple)) else " + ".join(f.name for f in opened)
    return CanonicalWeights(MergedFiles(opened, name), error)


def weights_of(tensors: Mapping[str, torch.Tensor], name: str = "<state dict>",
               error: ErrorType = CheckpointError) -> CanonicalWeights:
    """The canonical view of a state dict already in memory (same normalisation as files)."""
    return CanonicalWeights(DictTensors(name, tensors), error)
