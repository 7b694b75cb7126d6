"""The rules for every file the pack writes: nothing a user gave is lost.

- Readers call `note_input(path)` for each file they read (a folder notes the files directly
  inside it). The record is process-wide: the command line scopes it to one run with
  `run_scope()`; inside ComfyUI it spans the session, so a file read by any earlier prompt is
  protected too.
- Writers call `check_output(path, kind=...)` before any work starts. It refuses a path that is,
  or resolves to (symlink, hard link), a file that was read, naming both; refuses a container
  the writers cannot produce; and returns the path to write: the same one, or a numbered one
  (`<stem>_00001_<ext>`, ComfyUI's naming) when the file exists and overwriting is off.
- `atomic_write(path)` gives a temporary name in the same folder that replaces `path` only
  when the writing finished, so a failed or interrupted write never destroys the old file.
"""
from __future__ import annotations

import logging
import os
import re
import threading
import uuid
from contextlib import contextmanager
from typing import Iterable, Iterator, Optional

from .errors import OutputPathError

logger = logging.getLogger(__name__)

# What models/video_io.Mp4Writer writes (H.264 video + AAC sound with the priming marked; the one
# list for both modules); .webm, .gif, .avi and audio-only containers are refused up front.
SUPPORTED_VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv")
KIND_SUFFIXES = {"video": SUPPORTED_VIDEO_SUFFIXES, "image": (".png",)}
_NUMBERED = re.compile(r"^(.*)_(\d{5})_$")


class _ReadFiles:
    """Files read so far, by real path and by (device, inode) so hard links match too."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_real: dict[str, str] = {}
        self.by_identity: dict[tuple[int, int], str] = {}
        self.overwrite = False  # the run's policy for writers without an overwrite option of their own

    def clear(self) -> None:
        with self.lock:
            self.by_real.clear()
            self.by_identity.clear()


_READ = _ReadFiles()


def _identity(path: str) -> Optional[tuple[int, int]]:
    try:
        status = os.stat(path)  # follows symlinks: a link and its target share the identity
    except (OSError, ValueError):
        return None
    return (status.st_dev, status.st_ino) if status.st_ino else None


def note_input(path: str) -> None:
    """Record that the run reads `path` (a file, or every file directly inside a folder)."""
    path = os.path.expanduser(str(path))
    if os.path.isdir(path):
        with os.scandir(path) as entries:
            files = [entry.path for entry in entries if entry.is_file()]
    else:
        files = [path]
    with _READ.lock:
        for name in files:
            identity = _identity(name)
            if identity is None:
                continue  # missing: its reader reports that; nothing there to protect
            _READ.by_real.setdefault(os.path.realpath(name), name)
            _READ.by_identity.setdefault(identity, name)


def read_file_at(path: str, also_reads: Iterable[str] = ()) -> Optional[str]:
    """The noted input (as its reader named it) that `path` is the same file as, else None."""
    if not os.path.lexists(path):
        return None
    real, identity = os.path.realpath(path), _identity(path)
    for other in also_reads:
        if _same_file(path, other):
            return other
    with _READ.lock:
        noted = _READ.by_real.get(real) or (_READ.by_identity.get(identity) if identity else None)
    return noted if noted is not None and _same_file(path, noted) else None


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):  # b was deleted since it was read: nothing left to protect
        return False


def overwrite_allowed() -> bool:
    return _READ.overwrite


@contextmanager
def run_scope(*, overwrite: bool = False) -> Iterator[None]:
    """One command-line run: a fresh record of inputs and the run's --overwrite policy."""
    _READ.clear()
    _READ.overwrite = bool(overwrite)
    try:
        yield
    finally:
        _READ.clear()
        _READ.overwrite = False


def numbered_path(stem: str, suffix: str) -> str:
    """The first free `<stem>_NNNNN_<suffix>` (ComfyUI's naming); a numbered stem counts on."""
    match = _NUMBERED.match(stem)
    base, counter = (match.group(1), int(match.group(2)) + 1) if match else (stem, 1)
    while os.path.lexists(f"{base}_{counter:05d}_{suffix}"):
        counter += 1
    return f"{base}_{counter:05d}_{suffix}"


def check_output(path: str, *, overwrite: Optional[bool] = None, kind: Optional[str] = "video",
                 also_reads: Iterable[str] = ()) -> str:
    """The path to write instead of `path`, or OutputPathError naming what is wrong.

    kind: "video", "image" or None (no container check). overwrite: None follows the run's
    policy (off unless the command line's --overwrite). `also_reads`: files the caller reads
    besides the noted ones (e.g. the training cache)."""
    given = str(path).strip()
    if not given:
        raise OutputPathError("No output file given: type a file name (e.g. talk.mp4) or a full path.")
    path = os.path.expanduser(given)
    if os.path.isdir(path):
        raise OutputPathError(f"The output '{given}' is a folder: give a file name inside it, e.g. "
                              f"'{os.path.join(given, 'talk.mp4' if kind == 'video' else 'output.png')}'.")
    source = read_file_at(path, also_reads)
    if source is not None:
        same_name = os.path.abspath(path) == os.path.abspath(os.path.expanduser(source))
        through = "" if same_name else " (the same file under another name, through a link)"
        raise OutputPathError(f"The output '{given}' is the file '{source}'{through}, which this run reads: writing "
                              "there would destroy it. Choose another output name.")
    _check_suffix(given, kind)
    _check_folder(given, path)
    if overwrite is None:
        overwrite = overwrite_allowed()
    if overwrite or not os.path.lexists(path):
        return path
    numbered = numbered_path(*os.path.splitext(path))
    logger.info("'%s' exists: writing '%s' instead (overwrite it with --overwrite)", path, numbered)
    return numbered


def _check_suffix(given: str, kind: Optional[str]) -> None:
    if kind is None:
        return
    allowed = KIND_SUFFIXES[kind]
    suffix = os.path.splitext(given)[1].lower()
    if suffix not in allowed:
        what = {"video": "H.264 video with AAC sound", "image": "PNG pictures"}[kind]
        shown = f"'{suffix}'" if suffix else "no extension"
        raise OutputPathError(f"Cannot write the {kind} '{given}': {shown} is not a container the pack writes "
                              f"({what}). Use {allowed[0]}" + (f" (or {', '.join(allowed[1:])})." if allowed[1:]
                                                               else "."))


def _check_folder(given: str, path: str) -> None:
    """The folder of `path` exists and is writable, or can be created."""
    folder = os.path.dirname(os.path.abspath(path))
    while not os.path.lexists(folder):
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder):
        raise OutputPathError(f"Cannot write '{given}': '{folder}' is a file, not a folder. Choose another "
                              "output folder.")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputPathError(f"Cannot write '{given}': no permission to write in '{folder}'. Choose a folder "
                              "you can write to.")


@contextmanager
def atomic_write(path: str) -> Iterator[str]:
    """A temporary name beside `path` (same extension, so writers pick the same format) that
    replaces `path` when the block ends without error, and is removed when it fails."""
    folder, name = os.path.split(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    # The writer creates the file itself (usual permissions, unlike mkstemp's 0600).
    temporary = os.path.join(folder, f".{name}.{uuid.uuid4().hex[:8]}.tmp{os.path.splitext(name)[1]}")
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        try:
            os.remove(temporary)
        except OSError:  # never written, or still open on Windows: the original error matters more
            pass
        raise
