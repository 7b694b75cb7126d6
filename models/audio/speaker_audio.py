"""The pack's audio object (MULTITALK_AUDIO): every speaker's features on one timeline."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from ..dit.routing import MAX_SPEAKERS, ROUTING_MODES
from ..errors import AudioInputError
from .activity import voice_activity
from .prepare import SAMPLE_RATE, is_silent
from .timeline import build_timeline, mix_tracks, samples_for_frames
from .wav2vec_features import encode_track
from .wav2vec_loader import WAV2VEC_MULTITALK, Wav2VecEncoder
from .windows import AUDIO_WINDOW, stack_speaker_windows

logger = logging.getLogger(__name__)


@dataclass
class SpeakerAudio:
    """Per-speaker audio features on a common timeline; speaker k is index k (0-based).

    features: one float32 CPU tensor [T, L, C] per speaker (T = num_frames, L wav2vec
        layers = 12, C hidden = 768), computed on that speaker's track over the WHOLE timeline
        (silence where others speak), exactly as the official pipeline does. For AnyTalker
        (family "anytalker") the official windows instead: [T, 5, L, C] per speaker, bf16
        (models/anytalker/audio_timeline.py).
    num_frames: video frames T of the whole timeline (int(seconds * fps) or as requested).
    fps: video frame rate the features were interpolated to (25 for the released models).
    sample_rate: rate of `tracks` and `mixed` (16000).
    tracks: per speaker float32 [num_samples] 16 kHz mono waveform placed on the timeline.
    mixed: ComfyUI AUDIO {"waveform": [1, 1, num_samples], "sample_rate": 16000}, the sum of
        the tracks, scaled down as a whole if its peak exceeded 1 (never clipped).
    activity: bool [S, T], voice activity of each speaker per video frame.
    silent: per speaker, True when the track has no audible sound (a listener).
    timeline_mode: "parallel", "sequential" or "offsets".
    routing_mode: speaker routing the track count was validated for ("lrope" or "masked").
    starts: per speaker, first timeline sample of its track.
    lengths: per speaker, samples its track occupies on the timeline.
    warnings: human-readable notes raised while building (silent tracks, ...).
    family: the model family the features are for, from the wav2vec that made them
        ("multitalk": chinese-wav2vec2-base; "anytalker": wav2vec2-base-960h).
    """

    features: list[torch.Tensor]
    num_frames: int
    fps: float
    sample_rate: int
    tracks: list[torch.Tensor]
    mixed: dict
    activity: torch.Tensor
    silent: list[bool]
    timeline_mode: str
    routing_mode: str
    starts: list[int] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    family: str = WAV2VEC_MULTITALK

    @property
    def num_speakers(self) -> int:
        return len(self.features)

    @property
    def num_samples(self) -> int:
        return int(self.tracks[0].shape[0])

    @property
    def duration_s(self) -> float:
        return self.num_samples / self.sample_rate

    def windows(self, start: int, length: int, window: int = AUDIO_WINDOW) -> torch.Tensor:
        """[S, length, window, L, C] audio windows for video frames start..start+length-1
        (indices clamped to the timeline, so a window may run past the end)."""
        return stack_speaker_windows(self.features, start, length, window)

    def frame_to_sample(self, frame: int) -> int:
        return int(round(frame * self.sample_rate / self.fps))

    def mixed_between(self, start_frame: int, end_frame: int) -> dict:
        """The mixed soundtrack for video frames [start_frame, end_frame) as AUDIO; padded
        with silence where it runs past the end of the timeline."""
        a, b = self.frame_to_sample(max(start_frame, 0)), self.frame_to_sample(max(end_frame, start_frame, 0))
        wave = self.mixed["waveform"][..., a:b]  # [1, 1, n]
        missing = (b - a) - wave.shape[-1]
        if missing > 0:
            wave = torch.nn.functional.pad(wave, (0, missing))
        return {"waveform": wave.contiguous(), "sample_rate": self.sample_rate}


def check_speaker_count(count: int, routing_mode: str) -> None:
    if routing_mode not in ROUTING_MODES:
        raise AudioInputError(f"Unknown routing mode '{routing_mode}': choose one of {', '.join(ROUTING_MODES)}.")
    limit = MAX_SPEAKERS[routing_mode]
    if count > limit:
        raise AudioInputError(
            f"{count} speaker tracks given, but routing mode '{routing_mode}' supports at most {limit}: "
            "remove tracks or switch routing mode."
        )
    if count < 1:
        raise AudioInputError("No audio track given: connect at least audio_1.")


def build_speaker_audio(
    encoder: Wav2VecEncoder,
    tracks: Sequence[np.ndarray],
    timeline_mode: str = "parallel",
    fps: float = 25.0,
    offsets_s: Optional[Sequence[float]] = None,
    num_frames: Optional[int] = None,
    routing_mode: str = "lrope",
    listeners: int = 0,
    on_track_done: Optional[Callable[[int], None]] = None,
) -> SpeakerAudio:
    """Prepared 16 kHz mono tracks (see prepare_track) -> SpeakerAudio.

    Silent tracks are allowed (that speaker is a listener) and noted in `warnings`;
    `listeners` appends that many silent speakers after the tracks (offsets: they start at 0).
    `on_track_done(k)` is called after speaker k's features (progress / cancel checks)."""
    check_speaker_count(len(tracks) + listeners, routing_mode)
    tracks = list(tracks) + [np.zeros(0, dtype=np.float32)] * listeners
    if offsets_s is not None:
        offsets_s = list(offsets_s) + [0.0] * listeners
    line = build_timeline(tracks, timeline_mode, fps, offsets_s, num_frames)
    notes, silent, features = [], [], []
    for index, placed in enumerate(line.placed):
        silent.append(is_silent(placed))
        if silent[-1]:
            notes.append(
                f"Audio track {index + 1} is silent on the timeline (peak below -80 dBFS): speaker "
                f"{index + 1} is treated as a listener and will not lip-sync."
            )
            logger.warning(notes[-1])
        features.append(encode_track(encoder, placed, line.num_frames))
        if on_track_done is not None:
            on_track_done(index)
    mixed = torch.from_numpy(mix_tracks(line.placed))[None, None]  # [1, 1, samples]
    activity = torch.stack([voice_activity(p, line.num_frames, fps) for p in line.placed])  # [S, T]
    return SpeakerAudio(
        features=features,
        num_frames=line.num_frames,
        fps=float(fps),
        sample_rate=SAMPLE_RATE,
        tracks=[torch.from_numpy(p) for p in line.placed],
        mixed={"waveform": mixed, "sample_rate": SAMPLE_RATE},
        activity=activity,
        silent=silent,
        timeline_mode=timeline_mode,
        routing_mode=routing_mode,
        starts=list(line.starts),
        lengths=list(line.lengths),
        warnings=notes,
    )


def listener_features(encoder: Wav2VecEncoder, num_frames: int, fps: float = 25.0) -> torch.Tensor:
    """Features [num_frames, L, C] of a speaker who stays silent for the whole timeline
    (what the official pipeline feeds for a person without a track)."""
    silence = np.zeros(samples_for_frames(num_frames, fps), dtype=np.float32)
    return encode_track(encoder, silence, num_frames)
