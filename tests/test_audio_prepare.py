"""Per-track preparation: mono, 16 kHz, trims, loudness, and the bad-input messages."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from comfyui_multitalk.models.audio import audio_dict_to_numpy, loudness_normalize, prepare_track
from comfyui_multitalk.models.audio.prepare import to_mono_16k, trim_track
from comfyui_multitalk.models.errors import AudioInputError


def _speechlike(seconds: float, rate: int = 16000, level: float = 0.05, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    carrier = np.sin(2 * np.pi * 220 * t) + 0.5 * np.sin(2 * np.pi * 660 * t) + 0.1 * rng.standard_normal(t.size)
    return (level * carrier * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def test_loudness_reaches_minus_23_lufs():
    import pyloudnorm

    track = _speechlike(3.0, level=0.01)
    out = loudness_normalize(track, track=1)
    measured = pyloudnorm.Meter(16000).integrated_loudness(out.astype(np.float64))
    assert abs(measured - (-23.0)) < 0.1
    assert out.dtype == np.float32


def test_silence_is_left_alone():
    silent = np.zeros(16000, np.float32)
    assert np.array_equal(prepare_track(silent, 16000, 1), silent)
    assert np.array_equal(loudness_normalize(silent, 1), silent)


def test_short_track_skips_loudness_with_warning(caplog):
    short = _speechlike(0.2)
    with caplog.at_level(logging.WARNING):
        out = loudness_normalize(short, track=3)
    assert np.array_equal(out, short)
    assert "track 3" in caplog.text and "0.200 s" in caplog.text


def test_stereo_44k_becomes_mono_16k():
    left, right = _speechlike(1.0, 44100, seed=1), _speechlike(1.0, 44100, seed=2)
    mono = to_mono_16k(np.stack([left, right]), 44100, track=1)
    assert mono.shape == (16000,) and mono.dtype == np.float32
    direct = to_mono_16k((left + right)[None] / 2, 44100, track=1)
    assert np.allclose(mono, direct, atol=1e-6)


def test_trim_is_exact_to_the_sample():
    track = np.arange(16000 * 3, dtype=np.float32)
    kept = trim_track(track, 0.5, 2.0, track=2)
    assert kept.shape == (24000,) and kept[0] == 8000 and kept[-1] == 31999
    assert trim_track(track, 1.0, None, 2).shape == (32000,)
    with pytest.raises(AudioInputError, match="track 2.*trim start 3.5 s is not before trim end 3 s"):
        trim_track(track, 3.5, None, 2)


def test_comfy_audio_dict_and_bad_shapes():
    wave = torch.randn(1, 2, 800)
    samples, rate = audio_dict_to_numpy({"waveform": wave, "sample_rate": 8000}, track=1)
    assert samples.shape == (2, 800) and rate == 8000
    with pytest.raises(AudioInputError, match="track 2 holds a batch of 3 clips"):
        audio_dict_to_numpy({"waveform": torch.randn(3, 1, 10), "sample_rate": 16000}, track=2)
    with pytest.raises(AudioInputError, match="track 4 is not an AUDIO value.*str"):
        audio_dict_to_numpy("voice.wav", track=4)


@pytest.mark.parametrize(
    "samples, rate, pattern",
    [
        (np.zeros((1, 0), np.float32), 16000, "track 2 is empty \\(0 samples\\)"),
        (np.full((1, 100), np.nan, np.float32), 16000, "track 2 contains NaN"),
        (np.ones((1, 100), np.float32), 100, "track 2 has a sample rate of 100 Hz"),
        (np.ones((1, 100), np.float32), 1_000_000, "track 2 has a sample rate of 1000000 Hz"),
    ],
)
def test_bad_tracks_are_named(samples, rate, pattern):
    with pytest.raises(AudioInputError, match=pattern):
        prepare_track(samples, rate, track=2)


def test_low_sample_rate_warns_and_works(caplog):
    with caplog.at_level(logging.WARNING):
        out = prepare_track(_speechlike(1.0, 8000), 8000, track=3, normalize=False)
    assert out.shape == (16000,)
    assert "track 3 is sampled at 8000 Hz" in caplog.text
