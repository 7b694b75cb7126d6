"""The MULTITALK_AUDIO object for AnyTalker: every identity's official audio windows on one timeline.

What MultiTalk Audio Encode builds when its wav2vec is wav2vec2-base-960h (FACTS.md §8-9):
- parallel timeline = the official "pad" mode (every track from 0); sequential = "concat"
  (track k starts where track k-1 ends, counted in whole frames as the official does, and the
  soundtrack is placed on the same frames); offsets (the pack's) = "pad" mode on the placed tracks;
- F = the official frame count, 4n+1 frames of the longest track (or of the sum, in turn), at
  the official 24 fps unless told otherwise;
- features per identity [F, 5, layers, C] in bf16, exactly the official `audio_list`.
"""
from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from ..audio.activity import voice_activity
from ..audio.prepare import SAMPLE_RATE, is_silent
from ..audio.speaker_audio import SpeakerAudio
from ..audio.timeline import TIMELINE_MODES, build_timeline, mix_tracks
from ..audio.wav2vec_loader import WAV2VEC_ANYTALKER, Wav2VecEncoder
from ..errors import AudioInputError
from .audio import identity_features
from .geometry import FPS, frame_count


def four_n_plus_one(frames: int) -> int:
    """The largest 4n+1 <= frames (the model's frame counts)."""
    if frames < 1:
        raise AudioInputError(f"{frames} video frames requested: give at least 1 (0 = as long as the audio).")
    return (frames - 1) // 4 * 4 + 1


def concat_offsets(tracks: Sequence[np.ndarray], fps: float) -> list[float]:
    """Start seconds of each track in turn, on whole frames: the official concat mode places track k
    at the sum of the earlier tracks' ceil(seconds * fps) frames."""
    starts, frame = [], 0
    for track in tracks:
        starts.append(frame / fps)
        frame += math.ceil(len(track) / SAMPLE_RATE * fps)
    return starts


def _layout(tracks: list[np.ndarray], timeline_mode: str, fps: float, offsets_s: Optional[Sequence[float]],
            num_frames: Optional[int]) -> tuple[str, list[float], int]:
    """(official audio mode, start seconds per track, F)."""
    if timeline_mode not in TIMELINE_MODES:
        raise AudioInputError(f"Unknown timeline mode '{timeline_mode}': choose one of {', '.join(TIMELINE_MODES)}.")
    if timeline_mode == "sequential":
        starts, mode, durations = concat_offsets(tracks, fps), "concat", [len(t) / SAMPLE_RATE for t in tracks]
    elif timeline_mode == "offsets":
        starts, mode = list(offsets_s or []), "pad"
        if len(starts) != len(tracks):
            raise AudioInputError(f"offsets mode: {len(starts)} start times for {len(tracks)} tracks; give one "
                                  "start second per track, e.g. '0, 3.5'.")
        durations = [s + len(t) / SAMPLE_RATE for s, t in zip(starts, tracks)]
    else:
        starts, mode, durations = [0.0] * len(tracks), "pad", [len(t) / SAMPLE_RATE for t in tracks]
    frames = four_n_plus_one(num_frames) if num_frames else frame_count(durations, fps, mode)
    return mode, starts, frames


def build_anytalker_audio(encoder: Wav2VecEncoder, tracks: Sequence[np.ndarray], timeline_mode: str = "parallel",
                          fps: float = FPS, offsets_s: Optional[Sequence[float]] = None,
                          num_frames: Optional[int] = None, routing_mode: str = "lrope", listeners: int = 0,
                          on_track_done: Optional[Callable[[int], None]] = None) -> SpeakerAudio:
    """Prepared 16 kHz mono tracks -> SpeakerAudio with AnyTalker's features (family "anytalker").

    `listeners` silent identities follow the tracks (zero features, as the official for a missing
    track); `num_frames` forces F (rounded down to 4n+1)."""
    tracks = [np.asarray(t, dtype=np.float32).reshape(-1) for t in tracks]
    if not tracks or all(t.size == 0 for t in tracks):
        raise AudioInputError("No audio: connect at least audio_1 with some sound.")
    mode, starts, frames = _layout(tracks, timeline_mode, fps, offsets_s, num_frames)
    everyone = tracks + [np.zeros(0, np.float32)] * listeners
    line = build_timeline(everyone, "offsets", fps, starts + [0.0] * listeners, frames)
    sources = line.placed[:len(tracks)] if timeline_mode == "offsets" else tracks
    features = identity_features(encoder, list(sources) + [None] * listeners, frames, mode, fps)  # [N, F, 5, L, C]
    notes, silent = [], []
    for index, placed in enumerate(line.placed):
        silent.append(is_silent(placed))
        if silent[-1]:
            notes.append(f"Audio track {index + 1} is silent: identity {index + 1} listens (zero audio features).")
        if on_track_done is not None:
            on_track_done(index)
    activity = torch.stack([voice_activity(p, frames, fps) for p in line.placed])
    return SpeakerAudio(
        features=list(features.unbind(0)), num_frames=frames, fps=float(fps), sample_rate=SAMPLE_RATE,
        tracks=[torch.from_numpy(p) for p in line.placed],
        mixed={"waveform": torch.from_numpy(mix_tracks(line.placed))[None, None], "sample_rate": SAMPLE_RATE},
        activity=activity, silent=silent, timeline_mode=timeline_mode, routing_mode=routing_mode,
        starts=list(line.starts), lengths=list(line.lengths), warnings=notes, family=WAV2VEC_ANYTALKER)
