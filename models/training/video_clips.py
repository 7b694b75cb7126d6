"""Reading training clips with PyAV: frames resampled to 25 fps, bucketed, cut into windows.

Frame times are presentation times (edit lists applied) counted from the first frame, the same
clock a clip's soundtrack is read on (read_audio_file), so a clip's pictures and sound line up.

Frames are streamed: each decoded frame is resized and cropped to the bucket at once and only
one window (plus the overlap when windows overlap) is held, so long or 4K clips stay cheap.
"""
from __future__ import annotations

from collections import deque
from typing import Iterator, Optional

import numpy as np

from ..errors import DatasetInputError
from ..media_timing import frame_seconds, video_stream
from ..output_files import note_input
from ..speakers.geometry import crop_offsets, resized_size

TRAIN_FPS = 25.0  # the released models were trained on 25 fps video


def _frame_times(path: str) -> Iterator[tuple[float, np.ndarray]]:
    """(seconds from the first frame, RGB uint8 [H, W, 3]) of every decoded video frame. The first
    frame is time 0 of the clip, as it is for the clip's own sound (models/audio/files.py reads a
    video's soundtrack on the same clock, see models/media_timing.py)."""
    import av

    note_input(path)

    try:
        container = av.open(path)
    except Exception as exc:  # FFmpeg raises many error types; all mean "cannot open"
        raise DatasetInputError(f"Cannot open the video '{path}': {exc}. Re-encode it (e.g. H.264 mp4) "
                                "or remove it from the clips folder.") from None
    with container:
        stream = video_stream(container)
        if stream is None:
            raise DatasetInputError(f"'{path}' has no video stream: give a video file for each clip.")
        rate = float(stream.average_rate or TRAIN_FPS)
        first: Optional[float] = None
        try:
            for index, frame in enumerate(container.decode(stream)):
                time = frame_seconds(frame)
                time = index / rate if time is None else time
                first = time if first is None else first  # the clock's origin, as for the clip's sound
                yield time - first, frame.to_ndarray(format="rgb24")
        except DatasetInputError:
            raise
        except Exception as exc:
            raise DatasetInputError(f"The video '{path}' cannot be decoded ({exc}): the file is damaged or "
                                    "uses an unsupported codec; re-encode it.") from None


def frames_at_fps(path: str, fps: float = TRAIN_FPS) -> Iterator[np.ndarray]:
    """RGB uint8 frames [H, W, 3] resampled to `fps`: output frame k is the source frame nearest
    to k / fps (a 25 fps source passes through unchanged)."""
    previous: Optional[tuple[float, np.ndarray]] = None
    k = 0
    step = 1.0 / fps
    duration = step
    for time, image in _frame_times(path):
        if previous is not None:
            duration = max(time - previous[0], 1e-6)
            boundary = (previous[0] + time) / 2  # nearer to `previous` before this instant
            while k * step <= boundary + 1e-9:
                yield previous[1]
                k += 1
        previous = (time, image)
    if previous is not None:
        while k * step < previous[0] + duration / 2 - 1e-9:
            yield previous[1]
            k += 1


def bucket_frame(image: np.ndarray, target: tuple[int, int]) -> np.ndarray:
    """RGB uint8 [H, W, 3] -> [th, tw, 3]: cover-resize (Pillow bilinear) and centre crop, exactly
    as models/speakers/geometry.resize_crop_image does it for the reference image."""
    from PIL import Image

    size = resized_size(image.shape[0], image.shape[1], target)
    resized = np.asarray(Image.fromarray(image).resize((size[1], size[0]), resample=Image.BILINEAR))
    top, left = crop_offsets(size, target)
    return resized[top:top + target[0], left:left + target[1]]


def iter_windows(frames: Iterator[np.ndarray], window: int, stride: int,
                 max_windows: int = 0) -> Iterator[tuple[int, int, np.ndarray]]:
    """(window index, first frame, uint8 [window, H, W, 3]) for windows starting every `stride`
    frames; stops after `max_windows` (0: all that fit)."""
    buffer: deque = deque()
    start = index = 0
    skip = 0  # frames to drop before the next window starts (stride longer than the window)
    for frame in frames:
        if skip:
            skip -= 1
            continue
        buffer.append(frame)
        if len(buffer) < window:
            continue
        yield index, start, np.stack(buffer)
        index += 1
        if max_windows and index >= max_windows:
            return
        for _ in range(min(stride, window)):
            buffer.popleft()
        start += stride
        skip = max(0, stride - window)



def iter_shot_windows(frames: Iterator[np.ndarray], shots: list[tuple[int, float]], window: int, stride: int,
                      target: tuple[int, int]) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """Windows that stay inside one shot: (first frame, that frame at the source size, the shot's
    first frame bucketed, the bucketed window uint8 [window, th, tw, 3]). Windows start every
    `stride` frames from each shot's start; frames are bucketed as they arrive."""
    buffer: deque = deque()
    firsts: dict[int, np.ndarray] = {}
    shot, reference = 0, None
    for index, frame in enumerate(frames):
        while index >= shots[shot][1]:
            shot += 1
        start = int(shots[shot][0])
        if index == start:  # a new shot: nothing carries over the cut
            buffer.clear()
            firsts.clear()
        offset = index - start
        if offset % stride >= window:
            continue  # between two windows (stride longer than the window)
        bucketed = bucket_frame(frame, target)
        if offset == 0:
            reference = bucketed
        if offset % stride == 0:
            firsts[index] = frame
        buffer.append((index, bucketed))
        if len(buffer) == window:
            first = buffer[0][0]
            yield first, firsts.pop(first), reference, np.stack([b for _, b in buffer])
            for _ in range(min(stride, window)):
                buffer.popleft()
