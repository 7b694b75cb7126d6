"""The 25 fps timeline of the audio, and how other clocks map onto it.

Timeline frame k shows at k / fps seconds. A source frame presented at time p covers the
timeline frames from p up to the next source frame's time, so frame k shows the last source
frame presented at or before k / fps (TOLERANCE absorbs float noise only: at 29.97 fps a frame
lands 0.2 ms after a timeline instant). A 25 fps source maps one to one, as the official
indexing does.
"""
from __future__ import annotations

import math
import re
from typing import Optional, Sequence

from ..errors import DubbingInputError

TIMELINE_FPS = 25.0  # the rate the released models and their audio features run at
TOLERANCE = 1e-6  # seconds


def start_frame(seconds: float, fps: float = TIMELINE_FPS) -> int:
    """The first timeline frame at or after `seconds`."""
    return max(0, math.ceil(seconds * fps - 1e-9))


class TimelineResampler:
    """Assigns timeline frames to source frames as they arrive, in presentation order.

    For each source frame, call `covered(next_time)` with the time of the frame after it (or
    the source's end time for the last one): the count it returns is how many timeline frames
    show this source frame (0: the frame falls between two timeline frames and is skipped).
    """

    def __init__(self, fps: float = TIMELINE_FPS, limit: Optional[int] = None):
        self.fps, self.limit, self.assigned = fps, limit, 0

    def covered(self, next_time: float) -> int:
        end = math.ceil((next_time - TOLERANCE) * self.fps)  # first timeline frame at or after next_time
        if self.limit is not None:
            end = min(end, self.limit)
        count = max(0, end - self.assigned)
        self.assigned += count
        return count

    @property
    def full(self) -> bool:
        return self.limit is not None and self.assigned >= self.limit


def timeline_indices(times: Sequence[float], end: float, fps: float = TIMELINE_FPS,
                     limit: Optional[int] = None) -> list[int]:
    """Source frame index shown on each timeline frame, for frames presented at `times`
    (seconds, increasing, the first at 0) of a source that ends at `end` seconds."""
    resampler = TimelineResampler(fps, limit)
    indices: list[int] = []
    for index, _ in enumerate(times):
        following = times[index + 1] if index + 1 < len(times) else end
        indices.extend([index] * resampler.covered(following))
    return indices


def parse_timed_entries(text: str, what: str) -> list[tuple[float, str]]:
    """'0: calm | 6.5: laughing' (or one entry per line) -> [(0.0, 'calm'), (6.5, 'laughing')].

    Entries must start at 0 and go forward in time."""
    parts = [p.strip() for p in re.split(r"[|\n]", str(text or "")) if p.strip()]
    if not parts:
        raise DubbingInputError(f"The {what} is empty: write entries like '0: two people talk | 6.5: they laugh'.")
    entries = []
    for part in parts:
        match = re.match(r"^\s*([0-9]*\.?[0-9]+)\s*s?\s*:\s*(.*)$", part, re.S)
        if match is None:
            raise DubbingInputError(f"{what} entry '{part}' has no start time: write 'seconds: text', e.g. "
                                    "'6.5: the woman laughs'.")
        entries.append((float(match.group(1)), match.group(2).strip()))
    check_starts([s for s, _ in entries], what)
    return entries


def parse_starts(text: str, count: int, what: str) -> list[float]:
    """'0, 6.5, 12' -> [0.0, 6.5, 12.0], one start second for each of `count` items."""
    parts = [p for p in re.split(r"[,;\s|]+", str(text or "").strip()) if p]
    try:
        starts = [float(p) for p in parts]
    except ValueError:
        raise DubbingInputError(f"{what} '{text}' is not a list of seconds: write e.g. '0, 6.5, 12'.") from None
    if len(starts) != count:
        raise DubbingInputError(f"{what} '{text}' gives {len(starts)} start times for {count} items: give one per "
                                "item, the first 0.")
    check_starts(starts, what)
    return starts


def check_starts(starts: Sequence[float], what: str) -> None:
    if not starts or starts[0] != 0:
        raise DubbingInputError(f"The first {what} entry starts at {starts[0] if starts else 'nothing'} s: the first "
                                "must start at 0 so that every frame has one.")
    for before, after in zip(starts, starts[1:]):
        if not math.isfinite(after) or after <= before:
            raise DubbingInputError(f"{what} start times must increase: {after} s comes after {before} s. Sort "
                                    "the entries by time.")
