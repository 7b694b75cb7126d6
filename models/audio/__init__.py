"""Audio: files and AUDIO inputs -> per-speaker wav2vec2 features on a common timeline.

Public API (see docs/audio.md):
- read_audio_file, prepare_track, audio_dict_to_numpy: decoding and per-track preparation
- load_wav2vec, Wav2VecEncoder: the wav2vec2 model (folder or single file)
- encode_track: official-equivalent features [T, 12, 768] of one 16 kHz track
- build_speaker_audio, SpeakerAudio, listener_features: the MULTITALK_AUDIO object
- window_features, stack_speaker_windows: per-frame windows [.., 5, 12, 768] for the DiT
- draw_timeline, voice_activity, SPEAKER_COLORS, speaker_color: who speaks when
"""
from .activity import voice_activity
from .files import read_audio_file
from .palette import SPEAKER_COLORS, speaker_color
from .prepare import SAMPLE_RATE, TARGET_LUFS, audio_dict_to_numpy, loudness_normalize, prepare_track
from .speaker_audio import SpeakerAudio, build_speaker_audio, check_speaker_count, listener_features
from .timeline import TIMELINE_MODES, build_timeline, frames_for_samples, mix_tracks, parse_seconds_list
from .timeline_image import draw_timeline
from .wav2vec_features import encode_track
from .wav2vec_loader import WAV2VEC_ANYTALKER, WAV2VEC_FAMILIES, WAV2VEC_MULTITALK, Wav2VecEncoder, load_wav2vec
from .windows import AUDIO_WINDOW, stack_speaker_windows, window_features

__all__ = [
    "AUDIO_WINDOW",
    "SAMPLE_RATE",
    "SPEAKER_COLORS",
    "TARGET_LUFS",
    "TIMELINE_MODES",
    "WAV2VEC_ANYTALKER",
    "WAV2VEC_FAMILIES",
    "WAV2VEC_MULTITALK",
    "SpeakerAudio",
    "Wav2VecEncoder",
    "audio_dict_to_numpy",
    "build_speaker_audio",
    "build_timeline",
    "check_speaker_count",
    "draw_timeline",
    "encode_track",
    "frames_for_samples",
    "listener_features",
    "load_wav2vec",
    "loudness_normalize",
    "mix_tracks",
    "parse_seconds_list",
    "prepare_track",
    "read_audio_file",
    "speaker_color",
    "stack_speaker_windows",
    "voice_activity",
    "window_features",
]
