"""Reading audio files in every format the test can write, and clear errors for bad files."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

from comfyui_multitalk.models.audio import read_audio_file
from comfyui_multitalk.models.errors import AudioInputError
from comfyui_multitalk.models.media_timing import video_stream
from comfyui_multitalk.nodes.audio_nodes import MultiTalkLoadAudio

RATE = 22050


def _tone(seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    left = 0.3 * np.sin(2 * np.pi * 440 * t)
    right = 0.2 * np.sin(2 * np.pi * 330 * t)
    return np.stack([left, right]).astype(np.float32)  # [2, T]


def _write_soundfile(path, samples):
    import soundfile

    soundfile.write(str(path), samples.T, RATE)


def _encode_audio(container, stream, samples, rate, start=0):
    """Encode [C, T] in 1024-sample frames stamped with their pts (first sample at `start`), as a
    careful encoder does: FFmpeg then marks the codec's priming for removal in the container."""
    import av

    layout = "stereo" if samples.shape[0] == 2 else "mono"
    for pos in range(0, samples.shape[1], 1024):
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, pos:pos + 1024]), format="fltp",
                                           layout=layout)
        frame.sample_rate, frame.pts, frame.time_base = rate, start + pos, Fraction(1, rate)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)


def _write_pyav(path, samples, codec, rate=RATE):
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate, layout="stereo" if samples.shape[0] == 2 else "mono")
        _encode_audio(container, stream, samples, rate)


@pytest.mark.parametrize("ext, codec", [("wav", None), ("flac", None), ("ogg", None), ("mp3", "mp3"), ("m4a", "aac")])
def test_round_trip(tmp_path, ext, codec):
    samples = _tone()
    path = tmp_path / f"voice.{ext}"
    try:
        (_write_soundfile(path, samples) if codec is None else _write_pyav(path, samples, codec))
    except Exception as exc:  # this build cannot write the format: nothing to read back
        pytest.skip(f"cannot write {ext} here: {exc}")
    got, rate = read_audio_file(str(path))
    assert rate == RATE and got.shape[0] == 2 and got.dtype == np.float32
    # Lossy codecs add priming delay; compare the steady middle part by level and pitch.
    n = min(got.shape[1], samples.shape[1])
    assert abs(got.shape[1] - samples.shape[1]) < 0.1 * RATE
    if codec is None and ext != "ogg":
        assert np.abs(got[:, :n] - samples[:, :n]).max() < 1e-3
    middle = slice(RATE // 4, 3 * RATE // 4)
    for ch, freq in ((0, 440), (1, 330)):
        spectrum = np.abs(np.fft.rfft(got[ch, middle]))
        peak_hz = np.argmax(spectrum) * RATE / (middle.stop - middle.start)
        assert abs(peak_hz - freq) < 5
        assert abs(np.abs(got[ch, middle]).max() - np.abs(samples[ch, middle]).max()) < 0.05


def test_load_audio_node(tmp_path):
    path = tmp_path / "a.wav"
    _write_soundfile(path, _tone(0.5))
    (audio,) = MultiTalkLoadAudio().load(str(path))
    assert audio["sample_rate"] == RATE
    assert isinstance(audio["waveform"], torch.Tensor) and audio["waveform"].shape == (1, 2, RATE // 2)


def test_missing_corrupt_and_empty_files(tmp_path):
    with pytest.raises(AudioInputError, match="nope.wav' does not exist"):
        read_audio_file(str(tmp_path / "nope.wav"))
    corrupt = tmp_path / "broken.mp3"
    corrupt.write_bytes(b"ID3" + bytes(range(256)) * 4)
    with pytest.raises(AudioInputError, match="broken.mp3"):
        read_audio_file(str(corrupt))
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio")
    with pytest.raises(AudioInputError, match="notes.wav"):
        read_audio_file(str(text))
    empty = tmp_path / "empty.wav"
    _write_soundfile(empty, np.zeros((2, 0), np.float32))
    with pytest.raises(AudioInputError, match="empty.wav.*(no samples|zero length)"):
        read_audio_file(str(empty))
    with pytest.raises(AudioInputError, match="No audio file given"):
        MultiTalkLoadAudio().load("  ")


def _clicks(rate: int, seconds: float, at: tuple[float, ...]) -> np.ndarray:
    """Mono [1, T] silence with a 3-sample click at each time in `at` (seconds)."""
    samples = np.zeros((1, int(seconds * rate)), np.float32)
    for time in at:
        samples[0, round(time * rate):round(time * rate) + 3] = 0.8
    return samples


def _first_click(samples: np.ndarray, rate: int) -> float:
    """Seconds of the first sample above half scale (codecs smear a click but keep its onset)."""
    loud = np.flatnonzero(np.abs(samples[0]) > 0.4)
    assert loud.size, "the click is lost"
    return loud[0] / rate


@pytest.mark.parametrize("ext, codec, rate", [("m4a", "aac", 22050), ("mp3", "libmp3lame", 22050),
                                              ("opus", "libopus", 48000), ("mka", "aac", 44100)])
def test_lossy_round_trip_lands_on_the_same_sample(tmp_path, ext, codec, rate):
    """Encoders delay their output by priming samples (aac 1024, lame 1105, opus 312); the file says
    so (edit list, LAME header, pre-skip, CodecDelay) and the reader honours it."""
    path = tmp_path / f"voice.{ext}"
    _write_pyav(path, _clicks(rate, 1.0, (0.25, 0.7)), codec, rate)
    got, got_rate = read_audio_file(str(path))
    assert got_rate == rate
    loud = np.flatnonzero(np.abs(got[0]) > 0.4)
    onsets = loud[np.r_[True, np.diff(loud) > rate // 100]]  # first loud sample of each click
    assert len(onsets) == 2
    assert np.abs(onsets - np.array([0.25, 0.7]) * rate).max() <= 2


def _write_clip(path, codec: str, audio_delay: float, rate: int = 16000, click_at: float = 0.4) -> None:
    """A 25 fps clip (20 frames) whose sound starts `audio_delay` seconds after its first frame
    (negative: before it), with a click `click_at` seconds after the first frame."""
    import av

    video_start, audio_start = max(0.0, -audio_delay), max(0.0, audio_delay)  # seconds in the file
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=25)
        video.width = video.height = 32
        video.pix_fmt = "yuv420p"
        audio = container.add_stream(codec, rate=rate, layout="mono")
        for index in range(20):
            frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            frame.pts, frame.time_base = round(video_start * 25) + index, Fraction(1, 25)
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
        sound = _clicks(rate, 0.8, (click_at - audio_delay,))
        _encode_audio(container, audio, sound, rate, start=round(audio_start * rate))


@pytest.mark.parametrize("ext, codec", [("mp4", "aac"), ("mov", "pcm_s16le"), ("mkv", "aac"), ("mkv", "pcm_s16le")])
@pytest.mark.parametrize("audio_delay", [0.136, -0.2])
def test_sound_of_a_video_is_read_on_the_video_clock(tmp_path, ext, codec, audio_delay):
    """Sample 0 of a video's sound is its first frame: sound that starts 0.136 s late gets 0.136 s of
    leading silence (3.4 frames at 25 fps), sound that starts 0.2 s early is cut."""
    path = tmp_path / f"clip.{ext}"
    _write_clip(path, codec, audio_delay)
    got, rate = read_audio_file(str(path))
    assert rate == 16000
    assert abs(_first_click(got, rate) - 0.4) < 1e-3  # the click sits 0.4 s after the first frame
    if audio_delay > 0:
        assert np.abs(got[0, : round(0.13 * rate)]).max() < 1e-3  # the silence before the sound starts


def test_sound_ending_before_the_first_frame(tmp_path):
    path = tmp_path / "late_pictures.mov"
    _write_clip(path, "pcm_s16le", -0.8, click_at=-0.5)  # the sound (0.8 s) ends as the pictures start
    with pytest.raises(AudioInputError, match="late_pictures.mov' ends before its first video frame"):
        read_audio_file(str(path))


def test_cover_art_is_not_a_clock(tmp_path):
    """An mp3 with a cover picture is still an audio file: its sound starts at its own start."""
    import av

    path = tmp_path / "song.mp3"
    with av.open(str(path), "w") as container:
        cover = container.add_stream("png", rate=1)
        cover.width = cover.height = 16
        cover.pix_fmt = "rgb24"
        cover.disposition = av.stream.Disposition.attached_pic
        sound = container.add_stream("libmp3lame", rate=RATE, layout="mono")
        picture = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")
        for packet in cover.encode(picture):
            container.mux(packet)
        for packet in cover.encode(None):
            container.mux(packet)
        _encode_audio(container, sound, _clicks(RATE, 1.0, (0.25,)), RATE)
    with av.open(str(path)) as container:
        assert len(container.streams.video) == 1  # the cover is there, as a picture stream
        assert video_stream(container) is None  # but it is no clock: the file counts as audio-only
    got, rate = read_audio_file(str(path))
    assert abs(_first_click(got, rate) - 0.25) <= 2 / RATE
