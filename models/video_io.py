"""Writing frames (and a soundtrack) to mp4 with PyAV, streamed so RAM stays bounded."""
from __future__ import annotations

import os
from fractions import Fraction
from typing import Optional

import numpy as np
import torch

from .errors import GenerationInputError


class Mp4Writer:
    """Append IMAGE frames [n, H, W, 3] (0..1) to an H.264 mp4; the soundtrack (AUDIO), when
    given, is encoded as AAC on close (its stream is declared up front, as mp4 requires)."""

    def __init__(self, path: str, fps: float, audio: Optional[dict] = None, crf: int = 18):
        import av

        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        self.path, self.fps, self.crf = path, fps, crf
        try:
            self.container = av.open(path, mode="w")
        except Exception as exc:
            raise GenerationInputError(f"Cannot write the video '{path}': {exc}") from exc
        self.stream = self.audio_stream = None
        self.audio = audio
        self.frames = 0

    def _open_stream(self, height: int, width: int) -> None:
        self.stream = self.container.add_stream("libx264", rate=Fraction(self.fps).limit_denominator(1001))
        self.stream.width, self.stream.height = width - width % 2, height - height % 2
        self.stream.pix_fmt = "yuv420p"
        self.stream.options = {"crf": str(self.crf)}
        if self.audio is not None:
            self.audio_stream = self.container.add_stream("aac", rate=int(self.audio["sample_rate"]))
            self.audio_stream.layout = "mono" if self.audio["waveform"].shape[1] == 1 else "stereo"

    def write(self, frames: torch.Tensor) -> None:
        import av

        pixels = (frames.clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy()
        if self.stream is None:
            self._open_stream(*pixels.shape[1:3])
        for image in pixels:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image[: self.stream.height, : self.stream.width]),
                                               format="rgb24")
            self.container.mux(self.stream.encode(frame))
            self.frames += 1

    def close(self) -> str:
        if self.stream is not None:
            self.container.mux(self.stream.encode())
        if self.audio_stream is not None:
            self._write_audio(self.audio, self.audio_stream)
        self.container.close()
        return self.path

    def _write_audio(self, audio: dict, stream) -> None:
        import av

        rate = int(audio["sample_rate"])
        wave = audio["waveform"][0, :2].float().clamp(-1, 1).cpu().numpy()  # [C, T]
        chunk = 1024
        for start in range(0, wave.shape[1], chunk):
            block = np.ascontiguousarray(wave[:, start:start + chunk], dtype=np.float32)
            frame = av.AudioFrame.from_ndarray(block, format="fltp", layout=stream.layout.name)
            frame.sample_rate = rate
            self.container.mux(stream.encode(frame))
        self.container.mux(stream.encode())


def write_mp4(path: str, frames: torch.Tensor, fps: float, audio: Optional[dict] = None) -> str:
    writer = Mp4Writer(path, fps, audio)
    writer.write(frames)
    return writer.close()


def read_video_frames(path: str) -> tuple[int, float, Optional[float]]:
    """(video frame count, fps, audio seconds or None) of a file: for checks and tests."""
    import av

    with av.open(path) as container:
        video = container.streams.video[0]
        count = sum(1 for _ in container.decode(video))
        fps = float(video.average_rate)
    with av.open(path) as container:
        audio = [s for s in container.streams if s.type == "audio"]
        seconds = float(audio[0].duration * audio[0].time_base) if audio and audio[0].duration else None
    return count, fps, seconds
