"""A clip's sound as per-speaker wav2vec features on the clip's own clock.

Sources, in order: one file per speaker (`clip.speakerK.wav`); one mixed track (`clip.mix.wav`
or the video's own sound) cut into speakers by `clip.rttm`; the video's own sound as speaker 1.
A clip with no sound at all (no audio stream, or silence) is image-to-video data: its windows
train with zero audio, as the paper's multi-task share does.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..audio import build_speaker_audio, prepare_track, read_audio_file
from ..audio.prepare import is_silent, to_mono_16k
from ..errors import DatasetInputError, MultiTalkError
from .clip_folder import ClipSource
from .rttm import read_rttm, speaker_tracks
from .video_clips import TRAIN_FPS


@dataclass
class ClipAudio:
    features: list[torch.Tensor]  # per speaker [T, L, C] (empty for image-to-video clips)
    frames: int  # video frames the sound covers at 25 fps (0: no sound)
    tracks: list[np.ndarray] = field(default_factory=list)  # per speaker 16 kHz mono (sync check)
    notes: list[str] = field(default_factory=list)
    feature_shape: tuple[int, int] = (0, 0)  # (wav2vec layers, width)

    @property
    def talking(self) -> bool:
        return bool(self.features)

    def silent_window(self, frames: int) -> torch.Tensor:
        """Zero audio [1, frames, L, C] for an image-to-video window."""
        return torch.zeros(1, frames, *self.feature_shape)


def _raw_tracks(clip: ClipSource) -> list[np.ndarray]:
    """16 kHz mono tracks, one per speaker, before loudness normalisation."""
    if clip.rttm:
        source = clip.mix or clip.video
        try:
            mix = to_mono_16k(*read_audio_file(source), 1)
        except MultiTalkError as exc:
            raise DatasetInputError(f"Clip '{clip.name}': the mixed track '{source}' for '{clip.rttm}' cannot be "
                                    f"read ({exc}).") from None
        return speaker_tracks(mix, 16000, read_rttm(clip.rttm))
    tracks = []
    for number, path in enumerate(clip.speaker_audio or [], start=1):
        try:
            tracks.append(to_mono_16k(*read_audio_file(path), number))
        except MultiTalkError as exc:
            raise DatasetInputError(f"Clip '{clip.name}', speaker {number}: {exc}") from None
    return tracks


def _own_sound(clip: ClipSource) -> list[np.ndarray]:
    """The video's soundtrack as speaker 1, or [] when it has none (or only silence)."""
    try:
        track = to_mono_16k(*read_audio_file(clip.video), 1)
    except MultiTalkError:
        return []
    return [] if is_silent(track) else [track]


def read_clip_audio(clip: ClipSource, wav2vec: Any) -> ClipAudio:
    shape = (int(wav2vec.num_layers), int(wav2vec.hidden_size))
    explicit = bool(clip.rttm or clip.speaker_audio)
    raw = _raw_tracks(clip) if explicit else _own_sound(clip)
    if not raw:
        return ClipAudio([], 0, notes=[f"{clip.name}: no speech (no soundtrack, or silence): used as image-to-video "
                                       "data with zero audio."], feature_shape=shape)
    tracks = [prepare_track(track, 16000, number) for number, track in enumerate(raw, start=1)]
    speaker_audio = build_speaker_audio(wav2vec, tracks, "parallel", fps=TRAIN_FPS, routing_mode="masked")
    notes = [f"{clip.name}: {w}" for w in speaker_audio.warnings]
    if clip.rttm:
        notes.append(f"{clip.name}: speakers from '{clip.rttm}' in name order: "
                     + ", ".join(f"{k} = speaker {i}" for i, k in enumerate(read_rttm(clip.rttm), start=1)) + ".")
    return ClipAudio(speaker_audio.features, speaker_audio.num_frames, tracks, notes, shape)
