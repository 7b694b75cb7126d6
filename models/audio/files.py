"""Reading audio files: soundfile for wav/flac/ogg, PyAV (FFmpeg) for everything else."""
from __future__ import annotations

import logging
import os
from typing import Any, Optional

import numpy as np

from ..errors import AudioInputError
from ..output_files import note_input
from ..media_timing import frame_seconds, place_on_clock, stream_start_seconds, video_stream

logger = logging.getLogger(__name__)

# Formats libsndfile reads natively; anything else (mp3, m4a, aac, opus, video files) goes
# through FFmpeg via PyAV.
SOUNDFILE_EXTENSIONS = {".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif"}


def read_audio_file(path: str) -> tuple[np.ndarray, int]:
    """Decode an audio file to float32 samples [channels, samples] and its sample rate.

    Raises AudioInputError naming the file when it is missing, unreadable or holds no audio.
    """
    path = os.path.expanduser(str(path).strip())
    if not path:
        raise AudioInputError("No audio file given: type the path of a wav, flac, ogg, mp3 or m4a file.")
    if not os.path.isfile(path):
        raise AudioInputError(f"Audio file '{path}' does not exist: check the path.")
    note_input(path)  # no writer of this run may replace it
    ext = os.path.splitext(path)[1].lower()
    if ext in SOUNDFILE_EXTENSIONS:
        try:
            samples, rate = _read_with_soundfile(path)
        except Exception:  # libsndfile refuses some valid files (odd codecs): let FFmpeg try
            samples, rate = _read_with_pyav(path)
    else:
        samples, rate = _read_with_pyav(path)
    if samples.shape[-1] == 0:
        raise AudioInputError(f"Audio file '{path}' holds no samples (zero length): use a file with sound in it.")
    return samples, rate


def _read_with_soundfile(path: str) -> tuple[np.ndarray, int]:
    import soundfile

    data, rate = soundfile.read(path, dtype="float32", always_2d=True)  # [samples, channels]
    return np.ascontiguousarray(data.T), int(rate)


def _read_with_pyav(path: str) -> tuple[np.ndarray, int]:
    import av

    try:
        with av.open(path) as container:
            if not container.streams.audio:
                raise AudioInputError(f"File '{path}' has no audio stream: give a file that contains sound.")
            samples, rate, origin = _decode_on_clock(container)
    except AudioInputError:
        raise
    except Exception as exc:  # PyAV raises many FFmpeg error types; all mean "cannot decode"
        raise AudioInputError(
            f"Cannot read audio file '{path}': {exc}. Convert it to wav/flac/mp3 or check that it is not corrupt."
        ) from None
    if samples.shape[-1] == 0 and origin == "video":
        raise AudioInputError(f"The sound of '{path}' ends before its first video frame: there is no audio to "
                              "use on the video's timeline; give the voice as an audio file.")
    return samples, rate


def _decode_on_clock(container: Any) -> tuple[np.ndarray, int, str]:
    """(samples [C, T] whose sample 0 is time 0 of the file's clock, rate, "video" or "audio":
    which stream's start is that time 0). One pass: the video stream is decoded only up to its
    first frame, which is the clock of a file with pictures (see models/media_timing)."""
    import av

    audio, video = container.streams.audio[0], video_stream(container)
    resampler = av.AudioResampler(format="fltp")  # one row per channel whatever the codec's format
    chunks: list[np.ndarray] = []
    audio_start: Optional[float] = None
    decoded = 0
    video_start = _FirstFrame(video) if video is not None else None
    for packet in container.demux(*[s for s in (audio, video) if s is not None]):
        if packet.stream.index != audio.index:
            video_start.feed(packet)
            continue
        for frame in packet.decode():
            audio_start = frame_seconds(frame) if decoded == 0 else audio_start  # later frames follow on
            decoded += 1
            chunks.extend(f.to_ndarray() for f in resampler.resample(frame))
    chunks.extend(f.to_ndarray() for f in resampler.resample(None))
    rate = int(audio.rate or audio.codec_context.sample_rate or 0)
    if not chunks:
        raise AudioInputError(f"Audio file '{container.name}' decodes to no samples (zero length or corrupt).")
    samples = np.concatenate(chunks, axis=1).astype(np.float32, copy=False)
    if video_start is not None:
        return place_on_clock(samples, audio_start, video_start.seconds(), rate), rate, "video"
    origin = stream_start_seconds(audio)
    return place_on_clock(samples, audio_start, audio_start if origin is None else origin, rate), rate, "audio"


class _FirstFrame:
    """Presentation time of a video stream's first decoded frame, fed packet by packet; falls back
    on the demuxer's start time when the pictures cannot be decoded (no decoder for the codec)."""

    def __init__(self, stream: Any):
        self.stream, self.time, self.failed = stream, None, False

    def feed(self, packet: Any) -> None:
        if self.time is not None or self.failed:
            return
        try:
            for frame in packet.decode():
                self.time = frame_seconds(frame)
                if self.time is not None:
                    return
        except Exception as exc:  # the sound is still usable: time it by the container instead
            logger.warning("Cannot decode the pictures of '%s' (%s): timing its sound by the container.",
                           self.stream.container.name, exc)
            self.failed = True

    def seconds(self) -> Optional[float]:
        return self.time if self.time is not None else stream_start_seconds(self.stream)
