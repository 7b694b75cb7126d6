"""Reading a source video file: frames onto the 25 fps timeline, bucketed as they are decoded
(so RAM holds bucket-size frames, never the whole full-size video), and its soundtrack.

Time 0 is the first decoded frame's presentation time, as for every reader of the pack (see
models/media_timing.py); the soundtrack is read on the same clock.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Optional

import numpy as np
import torch

from ..audio.files import read_audio_file
from ..errors import AudioInputError, DubbingInputError
from ..media_timing import frame_seconds, video_stream
from ..speakers.geometry import resize_crop_pixels
from .source import SourceVideo, bucket_for
from .timing import TIMELINE_FPS, TimelineResampler, start_frame

logger = logging.getLogger(__name__)


class _Collector:
    """Bucketed frames and their source indices, each decoded frame converted only when shown."""

    def __init__(self, resolution: str):
        self.resolution, self.target, self.notes = resolution, None, []
        self.frames: list[np.ndarray] = []
        self.indices: list[int] = []
        self.source_size = (0, 0)

    def add(self, index: int, pixels: np.ndarray, repeats: int) -> None:
        if self.target is None:
            self.source_size = tuple(pixels.shape[:2])
            self.target, self.notes = bucket_for(pixels, self.resolution)
        if repeats > 0:
            bucketed = resize_crop_pixels(pixels, self.target)
            self.frames.extend([bucketed] * repeats)
            self.indices.extend([index] * repeats)


def _frame_rate(stream: Any) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else TIMELINE_FPS


def _decode(path: str, resolution: str, limit: Optional[int]) -> tuple[_Collector, float]:
    """Decode in presentation order; each frame is kept for the timeline frames before the
    next one's time (the last one until its own time plus one frame duration)."""
    import av

    collector, resampler = _Collector(resolution), TimelineResampler(limit=limit)
    with av.open(path) as container:
        stream = video_stream(container)
        if stream is None:
            raise DubbingInputError(f"'{path}' has no video stream: give a video file (mp4, mov, mkv, webm).")
        rate = _frame_rate(stream)
        origin: Optional[float] = None
        previous: Optional[tuple[int, np.ndarray]] = None
        for index, frame in enumerate(container.decode(stream)):
            seconds = frame_seconds(frame)
            now = index / rate if seconds is None else seconds
            origin = now if origin is None else origin
            if previous is not None:
                collector.add(*previous, resampler.covered(now - origin))
                if resampler.full:
                    return collector, rate
            previous, last = (index, frame.to_ndarray(format="rgb24")), now - origin
        if previous is None:
            raise DubbingInputError(f"'{path}' decodes to no video frames: check that the file is not corrupt.")
        collector.add(*previous, resampler.covered(last + 1.0 / rate))
    return collector, rate


def _read_frames(path: str, resolution: str, limit: Optional[int]) -> tuple[_Collector, float]:
    try:
        return _decode(path, resolution, limit)
    except DubbingInputError:
        raise
    except Exception as exc:  # PyAV raises many FFmpeg error types; all mean "cannot decode"
        raise DubbingInputError(f"Cannot read the video '{path}': {exc}. Convert it to H.264 mp4 or check that it "
                                "is not corrupt.") from None


def _soundtrack(path: str) -> Optional[dict]:
    """The file's sound on its video clock, or None when it has none (the node says so)."""
    try:
        samples, rate = read_audio_file(path)  # [C, T] on the video's clock
    except AudioInputError as exc:
        logger.info("Source video '%s' has no usable sound: %s", path, exc)
        return None
    return {"waveform": torch.from_numpy(samples)[None], "sample_rate": int(rate)}


def read_source_video(path: str, resolution: str, max_seconds: float = 0.0) -> SourceVideo:
    """A video file -> SourceVideo on the 25 fps timeline (at most `max_seconds`, 0 = all)."""
    path = os.path.expanduser(str(path).strip())
    if not path or not os.path.isfile(path):
        raise DubbingInputError(f"Source video '{path}' does not exist: check the path, or load it with Load Video.")
    limit = start_frame(max_seconds) if max_seconds > 0 else None
    collector, source_fps = _read_frames(path, resolution, limit)
    soundtrack = _soundtrack(path)
    frames = torch.from_numpy(np.stack(collector.frames))
    logger.info("Source video '%s': %d frames at %.3g fps -> %d timeline frames at %s", path,
                collector.indices[-1] + 1, source_fps, frames.shape[0], resolution)
    return SourceVideo(frames, float(source_fps), collector.indices, collector.source_size, resolution,
                       soundtrack=soundtrack, notes=collector.notes)
