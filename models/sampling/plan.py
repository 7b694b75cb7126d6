"""Planning the windows of a long video from the audio length.

Window 0 covers video frames [0, W) and is kept whole; window k >= 1 starts M frames before
the end of window k-1 (M motion frames carried over) and keeps its frames from M on. Enough
windows are planned to cover every audio frame; the audio is mirrored past its end to fill the
last window, and the output is trimmed to exactly the audio's frame count.

Segments (shot cuts of a dubbed video, image changes of an image timeline) are planned the same
way each, as independent jobs: a segment's first window starts at its first frame, fresh (no
motion frames carried in), and its windows keep only the frames before the next segment.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import torch

from ..errors import GenerationInputError

MODES = ("single", "multitalk", "infinitetalk")
DEFAULT_MOTION_FRAMES = {"single": 1, "multitalk": 25, "infinitetalk": 9}


@dataclass(frozen=True)
class Window:
    index: int
    start: int  # timeline frame of the window's first frame
    keep_from: int  # first frame of the window that goes to the output
    keep_to: int = 0  # frame of the window after the last one that goes to the output
    segment: int = 0  # index of the segment the window belongs to
    fresh: bool = True  # first window of its segment: nothing is carried in

    @property
    def new_frames(self) -> tuple[int, int]:
        """Timeline frames [first, end) the window adds to the output."""
        return self.start + self.keep_from, self.start + self.keep_to


@dataclass
class WindowPlan:
    mode: str
    window: int  # frames per window (4n + 1)
    motion: int  # frames carried from one window to the next
    output_frames: int  # frames of the finished video (= audio frames, or the cap)
    windows: list[Window]
    notes: list[str] = field(default_factory=list)

    @property
    def covered_frames(self) -> int:
        """Timeline frames the windows reach (>= output_frames; the rest is trimmed)."""
        return self.windows[-1].start + self.window


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise GenerationInputError(f"Unknown long-video mode '{mode}'; choose one of {', '.join(MODES)}.")


def default_motion_frames(mode: str) -> int:
    """Frames carried between windows when the user leaves it to the mode (0 on the node)."""
    _check_mode(mode)
    return DEFAULT_MOTION_FRAMES[mode]


def validate_window(window: int, motion: int, mode: str) -> None:
    _check_mode(mode)
    if window < 5 or (window - 1) % 4:
        raise GenerationInputError(f"Window length {window} frames is not 4n+1: set window_frames to 81 (what the models were "
                                   "trained on) or another 4n+1 such as 49 or 33.")
    if mode != "single" and not 1 <= motion < window:
        raise GenerationInputError(f"motion_frames is {motion} but must be between 1 and the window length "
                                   f"{window} minus one (MultiTalk uses 25, InfiniteTalk 9).")


def _segment_windows(first: int, start: int, end: int, window: int, motion: int, segment: int) -> list[Window]:
    """Windows of one segment [start, end), numbered from `first`."""
    stride = window - motion
    count = 1 + math.ceil(max(0, end - start - window) / stride)
    return [Window(first + k, start + k * stride, 0 if k == 0 else motion, min(window, end - start - k * stride),
                   segment, k == 0) for k in range(count)]


def plan_windows(audio_frames: int, window: int, motion: int, mode: str, max_frames: int = 0,
                 segment_starts: Sequence[int] = (0,)) -> WindowPlan:
    """Windows covering `audio_frames` (capped at `max_frames` when > 0), segment by segment."""
    validate_window(window, motion, mode)
    if audio_frames < 1:
        raise GenerationInputError("The audio has no frames: give at least one speaker track with sound.")
    notes = []
    total = min(audio_frames, max_frames) if max_frames > 0 else audio_frames
    if total < audio_frames:
        notes.append(f"Frame cap {max_frames}: the video stops at {total} of the audio's {audio_frames} frames.")
    starts = sorted({0, *(s for s in segment_starts if 0 < s < total)})
    if mode == "single":
        if len(starts) > 1:
            raise GenerationInputError(f"Single-window mode cannot split the video into {len(starts)} segments "
                                       "(shot cuts or image changes): choose the infinitetalk mode.")
        if total > window:
            notes.append(f"Single-window mode keeps the first {window} frames of {total}; choose a long-video "
                         "mode (multitalk or infinitetalk) for the whole audio.")
            total = window
        windows = [Window(0, 0, 0, total)]
    else:
        windows = []
        for segment, (start, end) in enumerate(zip(starts, starts[1:] + [total])):
            windows += _segment_windows(len(windows), start, end, window, motion, segment)
    if total < window and len(windows) == 1:
        notes.append(f"The audio covers {total} frames, less than one {window}-frame window: the audio is "
                     f"mirrored to fill the window and the video trimmed back to {total} frames.")
    if len(starts) > 1:
        notes.append(f"{len(starts)} segments, each starting fresh at frame(s) {', '.join(map(str, starts[1:]))}.")
    return WindowPlan(mode, window, motion, total, windows, notes)


def mirror_extend(features: torch.Tensor, length: int) -> torch.Tensor:
    """[T, ...] -> [length, ...]: frames past the end mirror the track backwards
    (T-1, T-2, ...), so speech continues naturally instead of freezing."""
    frames = features.shape[0]
    if length <= frames:
        return features
    index = torch.arange(length)
    period = 2 * frames
    folded = index % period
    index = torch.where(folded < frames, folded, period - 1 - folded)
    return features[index]
