"""Turning one speaker's raw audio into a clean 16 kHz mono track (validation, trim, loudness).

Order as in the official pipeline: decode -> mono -> resample to 16 kHz -> (our addition:
trim) -> loudness normalisation to -23 LUFS. Tracks are numbered from 1 in every message.
"""
from __future__ import annotations

import logging
import warnings
from typing import Optional

import numpy as np
import torch

from ..errors import AudioInputError

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000  # what wav2vec2 was trained on
TARGET_LUFS = -23.0  # EBU R128 programme loudness, as the official pipeline
MIN_SAMPLE_RATE = 4000  # below this there is no speech band left to lip-sync to
MAX_SAMPLE_RATE = 384000
SILENCE_PEAK = 1e-4  # about -80 dBFS: nothing audible
_LOUDNESS_BLOCK_S = 0.4  # BS.1770 gating block: shorter clips have no measurable loudness


def audio_dict_to_numpy(audio: dict, track: int) -> tuple[np.ndarray, int]:
    """ComfyUI AUDIO {"waveform": [B,C,T], "sample_rate": int} -> float32 [C, T] and rate."""
    if not isinstance(audio, dict) or "waveform" not in audio or "sample_rate" not in audio:
        raise AudioInputError(
            f"Audio track {track} is not an AUDIO value (got {type(audio).__name__}): "
            "connect a Load Audio node or another AUDIO output."
        )
    wave = audio["waveform"]
    wave = wave.detach().float().cpu().numpy() if isinstance(wave, torch.Tensor) else np.asarray(wave, np.float32)
    if wave.ndim == 3:
        if wave.shape[0] != 1:
            raise AudioInputError(
                f"Audio track {track} holds a batch of {wave.shape[0]} clips: give one clip per audio input."
            )
        wave = wave[0]
    elif wave.ndim == 1:
        wave = wave[None]
    elif wave.ndim != 2:
        raise AudioInputError(f"Audio track {track} has a waveform of shape {tuple(wave.shape)}; expected [B, C, T].")
    return wave, int(audio["sample_rate"])


def to_mono_16k(samples: np.ndarray, sample_rate: int, track: int) -> np.ndarray:
    """[C, T] or [T] at any rate -> float32 [T'] mono at 16 kHz (channel average, soxr_hq)."""
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim == 1:
        samples = samples[None]
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise AudioInputError(
            f"Audio track {track} has a sample rate of {sample_rate} Hz; only {MIN_SAMPLE_RATE}.."
            f"{MAX_SAMPLE_RATE} Hz can carry speech here. Re-export the file at 16000 Hz or higher."
        )
    if samples.shape[-1] == 0 or samples.shape[0] == 0:
        raise AudioInputError(f"Audio track {track} is empty (0 samples): give a clip with sound in it.")
    if not np.isfinite(samples).all():
        raise AudioInputError(
            f"Audio track {track} contains NaN or infinite samples: the file or node upstream is broken; "
            "load the file again or re-export it."
        )
    mono = samples.mean(axis=0)  # [T]
    if sample_rate != SAMPLE_RATE:
        if sample_rate < SAMPLE_RATE:
            logger.warning(
                "Audio track %d is sampled at %d Hz, below 16000 Hz: it is upsampled, but lip sync may be "
                "weaker than with full-band audio.", track, sample_rate
            )
        import librosa

        mono = librosa.resample(mono, orig_sr=sample_rate, target_sr=SAMPLE_RATE, res_type="soxr_hq")
    if mono.shape[0] == 0:
        raise AudioInputError(
            f"Audio track {track} is too short to resample ({samples.shape[-1]} samples at {sample_rate} Hz)."
        )
    return np.ascontiguousarray(mono, dtype=np.float32)


def trim_track(samples: np.ndarray, start_s: float, end_s: Optional[float], track: int) -> np.ndarray:
    """Keep [start_s, end_s) seconds of a 16 kHz track; end_s None or 0 means to the end."""
    duration = samples.shape[0] / SAMPLE_RATE
    if start_s < 0 or (end_s is not None and end_s < 0):
        raise AudioInputError(
            f"Audio track {track}: trim times must be >= 0 seconds (got start {start_s}, end {end_s})."
        )
    end = duration if not end_s else min(end_s, duration)
    if start_s >= end:
        raise AudioInputError(
            f"Audio track {track}: trim start {start_s:g} s is not before trim end {end:g} s "
            f"(the track lasts {duration:.3f} s). Choose a start before the end."
        )
    return samples[int(round(start_s * SAMPLE_RATE)) : int(round(end * SAMPLE_RATE))]


def is_silent(samples: np.ndarray) -> bool:
    return samples.size == 0 or float(np.abs(samples).max()) < SILENCE_PEAK


def loudness_normalize(samples: np.ndarray, track: int, target_lufs: float = TARGET_LUFS) -> np.ndarray:
    """Scale a 16 kHz track to `target_lufs` integrated loudness (ITU-R BS.1770, pyloudnorm).

    Like the official pipeline, a measurement beyond +-100 LUFS (silence) leaves the track
    as it is, and peaks above 1 after the gain are kept (the features see them unclipped).
    """
    if samples.shape[0] < int(_LOUDNESS_BLOCK_S * SAMPLE_RATE):
        logger.warning(
            "Audio track %d lasts %.3f s, shorter than the 0.4 s needed to measure loudness: it is used "
            "without loudness normalisation.", track, samples.shape[0] / SAMPLE_RATE
        )
        return samples
    import pyloudnorm

    meter = pyloudnorm.Meter(SAMPLE_RATE)
    loudness = meter.integrated_loudness(samples.astype(np.float64))
    if not np.isfinite(loudness) or abs(loudness) > 100:
        return samples
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pyloudnorm warns about peaks > 1, which we keep on purpose
        normalized = pyloudnorm.normalize.loudness(samples.astype(np.float64), loudness, target_lufs)
    return normalized.astype(np.float32)


def prepare_track(
    samples: np.ndarray,
    sample_rate: int,
    track: int,
    normalize: bool = True,
    trim_start_s: float = 0.0,
    trim_end_s: Optional[float] = None,
) -> np.ndarray:
    """Raw samples [C, T] or [T] of track `track` (1-based) -> float32 16 kHz mono, trimmed,
    loudness-normalised. A silent track is left as it is (normalising would blow faint
    noise up to speech level)."""
    mono = to_mono_16k(samples, sample_rate, track)
    if trim_start_s or trim_end_s:
        mono = trim_track(mono, trim_start_s, trim_end_s, track)
    if normalize and not is_silent(mono):
        mono = loudness_normalize(mono, track)
    return mono
