"""Writing frames (and a soundtrack) to mp4/mov/mkv with PyAV, streamed so RAM stays bounded;
probing written files as a player sees them."""
from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from typing import Optional

import numpy as np
import torch

from .errors import GenerationInputError
from .media_timing import frame_seconds, video_stream
# Containers that hold H.264 + AAC and mark the AAC priming for removal (checked by
# tests/test_video_io.py). webm needs VP9 + Opus, avi cannot mark priming: not offered.
from .output_files import SUPPORTED_VIDEO_SUFFIXES, note_input
from .soundtrack import SoundtrackEncoder


class Mp4Writer:
    """Append IMAGE frames [n, H, W, 3] (0..1) to an H.264 video (mp4, mov or mkv, by the path's
    suffix). A soundtrack (AUDIO), given up front, is encoded alongside the frames as 48 kHz AAC
    that starts on frame 0 and is cut or padded with silence to the frames' duration on close
    (see models/soundtrack.py)."""

    def __init__(self, path: str, fps: float, audio: Optional[dict] = None, crf: int = 18):
        import av

        _check_output(path, fps, audio)
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        self.path, self.crf = path, crf
        self.rate = Fraction(fps).limit_denominator(1001)  # 30000/1001 stays exact
        try:
            self.container = av.open(path, mode="w")
        except Exception as exc:
            raise GenerationInputError(f"Cannot write the video '{path}': {exc}") from exc
        self.stream = None
        self.soundtrack: Optional[SoundtrackEncoder] = None
        self.audio = audio
        self.frames = 0

    def _open_streams(self, height: int, width: int) -> None:
        self.stream = self.container.add_stream("libx264", rate=self.rate)
        self.stream.width, self.stream.height = width - width % 2, height - height % 2
        self.stream.pix_fmt = "yuv420p"
        self.stream.options = {"crf": str(self.crf)}
        if self.audio is not None:
            self.soundtrack = SoundtrackEncoder(self.container, self.audio, self.rate)

    def write(self, frames: torch.Tensor) -> None:
        import av

        pixels = (frames.clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy()
        if self.stream is None:
            self._open_streams(*pixels.shape[1:3])
        for image in pixels:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image[: self.stream.height, : self.stream.width]),
                                               format="rgb24")
            frame.pts, frame.time_base = self.frames, 1 / self.rate  # frame k shows at k / fps
            self.container.mux(self.stream.encode(frame))
            self.frames += 1
        if self.soundtrack is not None:
            self.soundtrack.advance(self.frames)

    def close(self) -> str:
        if self.stream is not None:
            self.container.mux(self.stream.encode())
        if self.soundtrack is not None:
            self.soundtrack.finish(self.frames)
        self.container.close()
        return self.path


def _check_output(path: str, fps: float, audio: Optional[dict]) -> None:
    suffix = os.path.splitext(str(path))[1].lower()
    if suffix not in SUPPORTED_VIDEO_SUFFIXES:
        raise GenerationInputError(f"Cannot write the video '{path}': '{suffix or 'no suffix'}' is not a video type "
                                   f"this pack writes; name it {', '.join(SUPPORTED_VIDEO_SUFFIXES)}.")
    if not fps > 0:
        raise GenerationInputError(f"Frame rate {fps} for '{path}': give a positive number of frames per second "
                                   "(e.g. 25).")
    if audio is not None and not int(audio["sample_rate"]) > 0:
        raise GenerationInputError(f"Soundtrack sample rate {audio['sample_rate']} for '{path}': give the AUDIO "
                                   "with a positive sample rate (e.g. 16000).")


def write_mp4(path: str, frames: torch.Tensor, fps: float, audio: Optional[dict] = None) -> str:
    writer = Mp4Writer(path, fps, audio)
    writer.write(frames)
    return writer.close()


@dataclass(frozen=True)
class VideoProbe:
    """What a player gets from a video file (FFmpeg through PyAV: edit lists and priming applied)."""

    frames: int  # decoded video frames
    fps: float
    audio_seconds: Optional[float]  # decoded sound (None: no audio stream)
    audio_start: Optional[float]  # first sound sample's time minus the first frame's time, seconds
    audio_rate: Optional[int]


def probe_video(path: str) -> VideoProbe:
    """Decode a whole video file and report its frames and sound as a player sees them."""
    import av

    note_input(path)

    with av.open(path) as container:
        video = video_stream(container)
        audio = container.streams.audio[0] if container.streams.audio else None
        first: dict[str, Optional[float]] = {}
        counts = {"video": 0, "audio": 0}
        for packet in container.demux(*[s for s in (video, audio) if s is not None]):
            kind = "video" if video is not None and packet.stream.index == video.index else "audio"
            for frame in packet.decode():
                first.setdefault(kind, frame_seconds(frame))
                counts[kind] += 1 if kind == "video" else frame.samples
        fps = float(video.average_rate) if video is not None and video.average_rate else 0.0
        rate = int(audio.rate or audio.codec_context.sample_rate) if audio is not None else None
    start = None
    if first.get("audio") is not None and first.get("video") is not None:
        start = first["audio"] - first["video"]
    seconds = counts["audio"] / rate if rate else None
    return VideoProbe(counts["video"], fps, seconds, start, rate)


def read_video_frames(path: str) -> tuple[int, float, Optional[float]]:
    """(video frame count, fps, decoded audio seconds or None) of a file: for checks and tests;
    probe_video also tells where the sound starts."""
    probe = probe_video(path)
    return probe.frames, probe.fps, probe.audio_seconds
