"""Stream timing shared by every media reader: which stream is the clock, where a frame sits on it.

Frame 0 and sample 0 of whatever the pack reads are time 0 of the file's reference clock: the
first frame of its video stream, or, in an audio-only file, the audio stream's nominal start.
FFmpeg applies edit lists and decoder priming (skip_samples side data) before frames reach us,
so a decoded frame's pts is the time a player presents it; the first decoded sample is not
assumed to be t=0.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np


def video_stream(container: Any) -> Optional[Any]:
    """The first moving-picture stream of a PyAV container; cover art (attached pictures of mp3
    or m4a files) is not a clock, so an audio file with a cover counts as audio-only."""
    import av

    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    return None


def frame_seconds(frame: Any) -> Optional[float]:
    """Presentation time of a decoded PyAV frame in seconds; None when the demuxer gave no pts."""
    if frame.pts is None or frame.time_base is None:
        return None
    return float(frame.pts * frame.time_base)


def stream_start_seconds(stream: Any) -> Optional[float]:
    """The demuxer's start time of a stream in seconds (after priming and edit lists), if known."""
    if stream.start_time is None or stream.time_base is None:
        return None
    return float(stream.start_time * stream.time_base)


def place_on_clock(samples: np.ndarray, start: Optional[float], origin: Optional[float], rate: int) -> np.ndarray:
    """Samples [C, T] whose first one plays at `start` seconds -> samples whose first one plays at
    `origin`: leading silence when the track starts later than the origin, cut when earlier."""
    if start is None or origin is None:
        return samples
    shift = round((start - origin) * rate)
    if shift > 0:
        return np.concatenate([np.zeros((samples.shape[0], shift), dtype=samples.dtype), samples], axis=1)
    return samples[:, -shift:]
