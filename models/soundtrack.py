"""A video's soundtrack, encoded in step with its frames: 48 kHz AAC that starts on frame 0 and lasts
exactly as long as the frames.

The whole soundtrack is given up front (an AUDIO dict), but it is resampled (soxr, as the rest of
the pack) and encoded only as far as the frames written so far, so a long streamed video keeps
memory bounded and its audio interleaved with the pictures. Every AAC frame carries its pts
(sample 0 = frame 0), so FFmpeg gives the encoder's priming packet a negative pts and the muxer
marks it for removal (mp4/mov: an edit list; mkv: CodecDelay): players start the sound on frame 0.
Past the end of the soundtrack the sound is silence; past the last frame it is cut.
"""
from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
import torch

SOUNDTRACK_RATE = 48000  # what video players and editors expect; AAC's best-supported rate
AAC_FRAME = 1024  # samples per AAC frame (FFmpeg's aac encoder)
_SOURCE_CHUNK = 1 << 15  # source samples resampled at a time


class SoundtrackEncoder:
    """Encodes `audio` ({"waveform": [B, C, T], "sample_rate"}) into an AAC stream of `container`,
    one channel (mono) or the first two (stereo), up to the end of a given number of video frames."""

    def __init__(self, container: Any, audio: dict, rate: Fraction):
        self.waveform = audio["waveform"][0, :2]  # [C, T]; converted chunk by chunk, never whole
        self.source_rate = int(audio["sample_rate"])
        self.video_rate = rate  # video frames per second, exactly as the video stream declares it
        channels = self.waveform.shape[0]
        self.stream = container.add_stream("aac", rate=SOUNDTRACK_RATE, layout="mono" if channels == 1 else "stereo")
        self.container = container
        self.resampler = None
        if self.source_rate != SOUNDTRACK_RATE:
            import soxr

            self.resampler = soxr.ResampleStream(self.source_rate, SOUNDTRACK_RATE, channels, dtype="float32",
                                                 quality="HQ")
        self.pending = np.zeros((channels, 0), dtype=np.float32)  # at 48 kHz, not yet encoded
        self.consumed = 0  # source samples handed to the resampler
        self.encoded = 0  # samples encoded so far = pts of the next AAC frame

    def samples_for(self, frames: int) -> int:
        """Soundtrack samples that cover `frames` video frames (frames / fps seconds)."""
        return round(frames * SOUNDTRACK_RATE / self.video_rate)

    def advance(self, frames: int) -> None:
        """Encode the whole AAC frames that lie before the end of video frame `frames`."""
        whole = self.samples_for(frames) // AAC_FRAME * AAC_FRAME
        self._encode_until(whole)

    def finish(self, frames: int) -> None:
        """Encode up to exactly the end of the last video frame, then flush the encoder."""
        self._encode_until(self.samples_for(frames))
        self._mux(self.stream.encode(None))

    def _encode_until(self, end: int) -> None:
        import av

        while self.encoded < end:
            count = min(AAC_FRAME, end - self.encoded)
            block = np.ascontiguousarray(self._take(count))
            frame = av.AudioFrame.from_ndarray(block, format="fltp", layout=self.stream.layout.name)
            frame.sample_rate = SOUNDTRACK_RATE
            frame.pts, frame.time_base = self.encoded, Fraction(1, SOUNDTRACK_RATE)
            self._mux(self.stream.encode(frame))
            self.encoded += count

    def _take(self, count: int) -> np.ndarray:
        """The next `count` samples at 48 kHz [C, count]: resampled on demand, silence past the end."""
        while self.pending.shape[1] < count and self.consumed < self.waveform.shape[1]:
            chunk = self.waveform[:, self.consumed:self.consumed + _SOURCE_CHUNK]
            self.consumed += chunk.shape[1]
            self.pending = np.concatenate([self.pending, self._resample(chunk)], axis=1)
        if self.pending.shape[1] < count:
            silence = np.zeros((self.pending.shape[0], count - self.pending.shape[1]), dtype=np.float32)
            self.pending = np.concatenate([self.pending, silence], axis=1)
        block, self.pending = self.pending[:, :count], self.pending[:, count:]
        return np.clip(block, -1.0, 1.0)  # resampling may overshoot a full-scale source

    def _resample(self, chunk: torch.Tensor) -> np.ndarray:
        samples = chunk.detach().float().cpu().numpy()
        if self.resampler is None:
            return samples
        last = self.consumed >= self.waveform.shape[1]  # the resampler's tail comes out with the last chunk
        return self.resampler.resample_chunk(np.ascontiguousarray(samples.T), last=last).T

    def _mux(self, packets: list) -> None:
        for packet in packets:
            self.container.mux(packet)
