"""Written videos: the soundtrack starts on frame 0, lasts as long as the frames, is 48 kHz AAC, and
streaming per window gives the same file as writing at once. Checked by decoding with PyAV
(FFmpeg: what a player plays), independently of the pack's readers."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

from comfyui_multitalk.models.audio import read_audio_file
from comfyui_multitalk.models.errors import GenerationInputError
from comfyui_multitalk.models.video_io import SUPPORTED_VIDEO_SUFFIXES, Mp4Writer, probe_video, write_mp4

FPS = 25
FRAMES = 35  # 1.40 s
AAC_FRAME_SECONDS = 1024 / 48000  # one AAC frame at 48 kHz: the most a decoder may add at the end
TESTED_SUFFIXES = (".mp4", ".mov", ".mkv")


def _frames(count: int = FRAMES) -> torch.Tensor:
    return torch.rand(count, 32, 48, 3, generator=torch.Generator().manual_seed(0))


def _soundtrack(seconds: float, clicks_at_frames: tuple[int, ...], rate: int = 16000, channels: int = 1) -> dict:
    """AUDIO with a 1-sample click at the time of each given video frame (k / 25 s)."""
    wave = torch.zeros(1, channels, round(seconds * rate))
    for k in clicks_at_frames:
        wave[0, :, k * rate // FPS] = 0.9
    return {"waveform": wave, "sample_rate": rate}


def _decode_sound(path) -> tuple[np.ndarray, int, float, float | None]:
    """(samples [C, T], rate, first sample's time, the container's declared duration) via PyAV."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        frames = list(container.decode(stream))
        declared = float(stream.duration * stream.time_base) if stream.duration else None
    samples = np.concatenate([f.to_ndarray() for f in frames], axis=1)  # fltp: one row per channel
    return samples, frames[0].sample_rate, float(frames[0].pts * frames[0].time_base), declared


def _click_times(samples: np.ndarray, rate: int) -> list[float]:
    """Times (s) of the local peaks above half scale in channel 0."""
    x = np.abs(samples[0])
    peaks = [i for i in np.flatnonzero(x > 0.45) if x[i] >= x[max(i - 1, 0)] and x[i] >= x[min(i + 1, len(x) - 1)]]
    return [i / rate for i in peaks]


@pytest.mark.parametrize("suffix", TESTED_SUFFIXES)
def test_soundtrack_starts_on_frame_0_and_lasts_as_long_as_the_frames(tmp_path, suffix):
    path = tmp_path / f"talk{suffix}"
    clicks = (1, 10, 30)  # frames whose time carries a click in the 16 kHz input
    write_mp4(str(path), _frames(), FPS, _soundtrack(1.4, clicks))
    samples, rate, start, declared = _decode_sound(path)
    assert rate == 48000 and samples.shape[0] == 1
    assert start == 0.0  # the first decoded sample plays with frame 0: the priming is removed
    seconds = samples.shape[1] / rate
    assert 1.40 <= seconds < 1.40 + AAC_FRAME_SECONDS  # the decoder pads the last AAC frame only
    if suffix != ".mkv":  # mkv declares no per-stream duration
        assert declared == pytest.approx(1.40, abs=1 / 48000)  # the container's edit list: exactly 35 frames
    found = _click_times(samples, rate)
    assert len(found) == 3 and np.abs(np.array(found) - np.array(clicks) / FPS).max() < 1e-3
    probe = probe_video(str(path))
    assert (probe.frames, probe.fps, probe.audio_rate) == (35, 25.0, 48000)
    assert probe.audio_start == 0.0 and probe.audio_seconds == pytest.approx(seconds)
    got, got_rate = read_audio_file(str(path))  # the pack reads its own videos on the same clock
    assert got_rate == 48000 and np.abs(np.array(_click_times(got, got_rate)) - np.array(clicks) / FPS).max() < 1e-3


def test_every_supported_suffix_is_tested():
    assert set(SUPPORTED_VIDEO_SUFFIXES) <= set(TESTED_SUFFIXES)


@pytest.mark.parametrize("seconds", [2.0, 0.6])
def test_soundtrack_is_cut_or_padded_to_the_frames(tmp_path, seconds):
    """A 2 s soundtrack under 1.4 s of frames is cut (its click at 1.8 s is gone); a 0.6 s one is
    followed by silence up to 1.4 s."""
    path = tmp_path / "talk.mp4"
    sound = _soundtrack(seconds, (5,))
    sound["waveform"][0, 0, round(1.8 * 16000):] = 0.5 if seconds > 1.8 else 0.0  # loud tail past the frames
    sound["waveform"][0, 0, round(0.3 * 16000):round(0.6 * 16000)] += 0.2  # a level step up to 0.6 s
    write_mp4(str(path), _frames(), FPS, sound)
    samples, rate, start, declared = _decode_sound(path)
    assert start == 0.0 and declared == pytest.approx(1.40, abs=1 / 48000)
    assert 1.40 <= samples.shape[1] / rate < 1.40 + AAC_FRAME_SECONDS
    assert np.abs(samples[0, round(0.35 * rate):round(0.55 * rate)].mean() - 0.2) < 0.02
    assert np.abs(samples[0, round(0.65 * rate):]).max() < 0.01  # silence: padding, or 0.6..1.4 s of the input


def test_streamed_windows_give_the_one_shot_file_in_bounded_memory(tmp_path):
    """Mp4Writer.write per window, a 60 s soundtrack given up front: the sound is resampled only
    as far as the frames written, and the file decodes to the same sound and frames."""
    frames = _frames()
    sound = _soundtrack(60.0, (1, 10, 30), rate=22050, channels=2)
    write_mp4(str(tmp_path / "once.mp4"), frames, FPS, sound)
    writer = Mp4Writer(str(tmp_path / "streamed.mp4"), FPS, sound)
    writer.write(frames[:17])
    assert writer.soundtrack.consumed < 3 * 22050  # 0.68 s of frames used well under 60 s of sound
    writer.write(frames[17:26])
    writer.write(frames[26:])
    writer.close()
    once, rate, _, _ = _decode_sound(tmp_path / "once.mp4")
    streamed, _, start, _ = _decode_sound(tmp_path / "streamed.mp4")
    assert rate == 48000 and streamed.shape[0] == 2 and start == 0.0
    np.testing.assert_array_equal(streamed, once)
    assert probe_video(str(tmp_path / "streamed.mp4")).frames == 35


def test_other_frame_rates_keep_sound_and_frames_together(tmp_path):
    """24 fps, 10 frames (0.4167 s): the sound lasts 10/24 s, and a click at frame 6 plays at 0.25 s."""
    path = tmp_path / "film.mov"
    wave = torch.zeros(1, 1, 44100)
    wave[0, 0, round(0.25 * 44100)] = 0.9
    write_mp4(str(path), _frames(10), 24.0, {"waveform": wave, "sample_rate": 44100})
    samples, rate, start, declared = _decode_sound(path)
    assert start == 0.0 and declared == pytest.approx(10 / 24, abs=1e-3)  # edit lists count in ms
    assert 10 / 24 <= samples.shape[1] / rate < 10 / 24 + AAC_FRAME_SECONDS
    assert abs(_click_times(samples, rate)[0] - 0.25) < 1e-3


def test_probe_reports_where_the_sound_starts(tmp_path):
    """A clip whose sound starts 0.136 s after its first frame."""
    import av

    path = tmp_path / "late.mov"
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = 32, 32, "yuv420p"
        audio = container.add_stream("pcm_s16le", rate=16000, layout="mono")
        for index in range(10):
            frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, FPS)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        for pos in range(0, 4096, 1024):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = 16000, round(0.136 * 16000) + pos, Fraction(1, 16000)
            container.mux(audio.encode(frame))
        container.mux(audio.encode(None))
    probe = probe_video(str(path))
    assert probe.frames == 10 and probe.audio_rate == 16000 and probe.audio_seconds == 4096 / 16000
    assert abs(probe.audio_start - 0.136) < 1e-3


def test_bad_output_settings_raise_typed_errors(tmp_path):
    frames, sound = _frames(3), _soundtrack(0.12, ())
    with pytest.raises(GenerationInputError, match=r"talk.webm'.*'.webm' is not a video type.*\.mp4, \.mov, \.mkv"):
        write_mp4(str(tmp_path / "talk.webm"), frames, FPS, sound)
    with pytest.raises(GenerationInputError, match=r"Frame rate 0 .*positive"):
        write_mp4(str(tmp_path / "talk.mp4"), frames, 0, sound)
    with pytest.raises(GenerationInputError, match=r"sample rate 0 .*positive"):
        write_mp4(str(tmp_path / "talk.mp4"), frames, FPS, {"waveform": sound["waveform"], "sample_rate": 0})
    assert not list(tmp_path.iterdir())  # nothing was written
