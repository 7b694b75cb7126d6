"""Which files one weights source stands for, checked before any library opens them.

A source is a file, a sharded checkpoint (its index json, the folder holding it, or the
shards without an index, named `*-0000N-of-0000M.*`), or a list of files. Missing paths,
folders where a file is expected, unreadable files (permissions) and empty files get an error
that names the path and says what to do.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Optional, Sequence, Union

from ..errors import CheckpointError, MultiTalkError
from ..output_files import note_input

SAFETENSORS_SUFFIXES = (".safetensors", ".sft")
TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
GGUF_SUFFIXES = (".gguf",)
WEIGHT_SUFFIXES = SAFETENSORS_SUFFIXES + TORCH_SUFFIXES + GGUF_SUFFIXES
_SHARD = re.compile(r"-(\d+)-of-(\d+)\.[A-Za-z]+$")

PathLike = Union[str, os.PathLike]
ErrorType = type[MultiTalkError]


def weight_files_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in WEIGHT_SUFFIXES)


def check_file(path: Path, error: ErrorType = CheckpointError) -> Path:
    """The path of a readable, non-empty weights file, or a clear error."""
    if not path.exists():
        raise error(f"'{path}' does not exist. Check the path or the file name.")
    if path.is_dir():
        names = ", ".join(p.name for p in weight_files_in(path)[:6]) or "no weight files"
        raise error(f"'{path}' is a folder, but a weights file is expected here. Choose the file inside it "
                    f"(found: {names}).")
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except PermissionError:
        raise error(f"'{path}' cannot be read (permission denied). Give your user read access to it "
                    "(e.g. chmod a+r), or copy it somewhere you own.") from None
    except OSError as exc:
        raise error(f"'{path}' cannot be read ({exc.strerror or exc}). Check the disk or copy the file "
                    "again.") from None
    if path.stat().st_size == 0:
        raise error(f"'{path}' is empty (0 bytes): the download or copy did not finish. Download it again.")
    if path.suffix.lower() not in WEIGHT_SUFFIXES:
        raise error(f"'{path}' is not a weights file: expected one of {', '.join(WEIGHT_SUFFIXES)}.")
    note_input(str(path))  # no writer of this run may replace a model file it reads
    return path


def shards_from_index(index: Path, error: ErrorType = CheckpointError) -> list[Path]:
    """The shard files a `*.index.json` lists, all of which must be present."""
    if not index.is_file():
        check_file(index, error)  # names what is wrong: missing, a folder
    note_input(str(index))
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        names = sorted(set(weight_map.values()))
    except PermissionError:
        raise error(f"'{index}' cannot be read (permission denied). Give your user read access to it.") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise error(f"'{index}' is not a sharded-checkpoint index (no weight_map): {exc}.") from None
    shards = [index.parent / name for name in names]
    missing = [s.name for s in shards if not s.is_file()]
    if missing:
        raise error(f"Shards listed in '{index}' are missing: {', '.join(missing[:4])}"
                    f"{' ...' if len(missing) > 4 else ''} ({len(missing)} of {len(shards)}). "
                    "Download every shard into the same folder.")
    return [check_file(s, error) for s in shards]


def unindexed_shards(files: Sequence[Path]) -> Optional[list[Path]]:
    """`files` when they are the complete set `*-00001-of-0000N` .. `-0000N-of-0000N`, else None."""
    found = [(_SHARD.search(p.name), p) for p in files]
    if not found or any(m is None for m, _ in found):
        return None
    totals = {int(m.group(2)) for m, _ in found}
    numbers = sorted(int(m.group(1)) for m, _ in found)
    if len(totals) != 1 or numbers != list(range(1, totals.pop() + 1)):
        return None
    return list(files)


def folder_sources(folder: Path, error: ErrorType = CheckpointError) -> Optional[list[Path]]:
    """The files a folder stands for (its index's shards, its complete unindexed shards or its
    only weights file), or None when it holds several unrelated files."""
    # safetensors indices first: Hugging Face folders often hold a .bin index beside it
    indices = sorted(folder.glob("*.index.json"), key=lambda p: (".safetensors" not in p.name, p.name))
    if indices:
        return shards_from_index(indices[0], error)
    files = weight_files_in(folder)
    if not files:
        raise error(f"The folder '{folder}' holds no weight files ({', '.join(WEIGHT_SUFFIXES)}).")
    if len(files) == 1:
        return [check_file(files[0], error)]
    shards = unindexed_shards(files)
    return [check_file(s, error) for s in shards] if shards else None
