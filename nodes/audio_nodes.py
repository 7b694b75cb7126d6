"""Audio nodes: wav2vec2 loader, audio file loader, and the N-speaker audio encoder."""
from __future__ import annotations

import torch

from ..models.audio import (
    TIMELINE_MODES,
    SpeakerAudio,
    audio_dict_to_numpy,
    build_speaker_audio,
    draw_timeline,
    load_wav2vec,
    parse_seconds_list,
    prepare_track,
    read_audio_file,
)
from ..models.anytalker.geometry import FPS as ANYTALKER_FPS
from ..models.audio.wav2vec_loader import WAV2VEC_ANYTALKER
from ..models.dit.routing import MAX_SPEAKERS, ROUTING_MODES
from ..models.errors import AudioInputError, CheckpointError
from . import comfy_bridge
from .audio_ui import timeline_ui

CATEGORY = "MultiTalk/audio"
MAX_AUDIO_INPUTS = max(MAX_SPEAKERS.values())
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
_TIMELINE_TIP = (
    "parallel: all tracks start at 0. sequential: each track starts when the previous ends "
    "(turn-taking). offsets: start times from 'offsets'."
)


class MultiTalkWav2VecLoader:
    DESCRIPTION = (
        "Loads the wav2vec2 audio encoder: chinese-wav2vec2-base for MultiTalk/InfiniteTalk (ComfyUI's "
        "wav2vec2-chinese-base_fp16.safetensors works), or facebook/wav2vec2-base-960h for AnyTalker (its "
        "model.safetensors, best inside its Hugging Face folder). A single file from models/audio_encoders or a "
        "folder. Which one it is is read off the weights (960h has a CTC head) and travels with the features."
    )
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = ("MULTITALK_WAV2VEC",)
    RETURN_NAMES = ("wav2vec",)
    OUTPUT_TOOLTIPS = ("The wav2vec2 encoder, for MultiTalk Audio Encode (MultiTalk or AnyTalker features).",)

    @classmethod
    def INPUT_TYPES(cls):
        comfy_bridge.register_extra_folders()
        model = comfy_bridge.model_file_input("audio_encoders", "wav2vec2 weights (a file, or a Hugging Face folder)")
        return {
            "required": {
                "model": model,
                "precision": (list(_DTYPES), {
                    "default": "fp32",
                    "tooltip": "Weights dtype. fp32 reproduces the official features exactly; "
                    "fp16/bf16 halve memory on GPU.",
                }),
            },
            "optional": {
                "attention_heads": ("INT", {
                    "default": 0, "min": 0, "max": 64,
                    "tooltip": "Attention heads; 0 infers hidden/64 (12 for the base model). "
                    "Only needed for unusual files without a config.",
                }),
            },
        }

    def load(self, model, precision="fp32", attention_heads=0):
        if precision not in _DTYPES:
            raise CheckpointError(f"Unknown wav2vec precision '{precision}': choose one of {', '.join(_DTYPES)}.")
        path = comfy_bridge.resolve_model_path("audio_encoders", model)
        return (load_wav2vec(path, dtype=_DTYPES[precision], num_attention_heads=attention_heads or None),)


class MultiTalkLoadAudio:
    DESCRIPTION = (
        "Reads an audio file (wav, flac, ogg, mp3, m4a, or the sound of a video file) from any path into AUDIO."
    )
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = ("AUDIO",)
    RETURN_NAMES = ("audio",)
    OUTPUT_TOOLTIPS = ("The file's waveform at its own sample rate and channel count.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"path": ("STRING", {"default": "", "tooltip": "Full path of the audio file to read."})}}

    def load(self, path):
        samples, rate = read_audio_file(path)  # [C, T]
        return ({"waveform": torch.from_numpy(samples)[None], "sample_rate": rate},)


def _audio_inputs() -> dict:
    optional = {}
    for k in range(2, MAX_AUDIO_INPUTS + 1):
        tip = f"Speaker {k}'s voice (optional). Connect tracks in order."
        optional[f"audio_{k}"] = ("AUDIO", {"tooltip": tip})
    return optional


class MultiTalkAudioEncode:
    DESCRIPTION = (
        "Places one audio track per speaker on a common timeline (parallel, turn-taking, or explicit "
        "offsets), normalises loudness, and computes each speaker's wav2vec2 features exactly like "
        "the official pipeline of the wav2vec's model family (MultiTalk/InfiniteTalk, or AnyTalker with "
        "wav2vec2-base-960h). Also returns the mixed soundtrack, the frame count and a 'who speaks when' picture."
    )
    CATEGORY = CATEGORY
    FUNCTION = "encode"
    RETURN_TYPES = ("MULTITALK_AUDIO", "AUDIO", "INT", "IMAGE")
    RETURN_NAMES = ("audio_features", "mixed_audio", "num_frames", "timeline")
    OUTPUT_TOOLTIPS = (
        "Per-speaker features for the MultiTalk sampler.",
        "All tracks mixed on the timeline (16 kHz mono), for the final video's soundtrack.",
        "Video frames the audio covers at the chosen fps.",
        "One row per speaker, coloured where that speaker is heard; check turn-taking before generating.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "wav2vec": ("MULTITALK_WAV2VEC", {"tooltip": "From MultiTalk wav2vec2 Loader."}),
                "audio_1": ("AUDIO", {"tooltip": "Speaker 1's voice."}),
                "timeline_mode": (list(TIMELINE_MODES), {"default": "parallel", "tooltip": _TIMELINE_TIP}),
                "normalize_loudness": ("BOOLEAN", {
                    "default": True,
                    "tooltip": "Normalise each track to -23 LUFS as the official MultiTalk pipeline does "
                    "(silent tracks are left alone). AnyTalker's official pipeline does not: off for AnyTalker.",
                }),
                "fps": ("FLOAT", {
                    "default": 25.0, "min": 1.0, "max": 120.0, "step": 0.5,
                    "tooltip": "Video frame rate: MultiTalk/InfiniteTalk were trained at 25, AnyTalker at 24.",
                }),
                "routing_mode": (list(ROUTING_MODES), {
                    "default": ROUTING_MODES[0],
                    "tooltip": "Speaker routing you will sample with; only used here to check the number of tracks "
                    "(MultiTalk family; AnyTalker binds each track to a face).",
                }),
            },
            "optional": {
                **_audio_inputs(),
                "offsets": ("STRING", {
                    "default": "", "tooltip": "offsets mode: start second of each track, e.g. '0, 3.5, 7'.",
                }),
                "trim_starts": ("STRING", {
                    "default": "", "tooltip": "Seconds cut from the start of each track, e.g. '0.5, 0' (missing = 0).",
                }),
                "trim_ends": ("STRING", {
                    "default": "",
                    "tooltip": "Second at which each track stops, e.g. '12, 0' (0 or missing = to its end).",
                }),
                "num_frames": ("INT", {
                    "default": 0, "min": 0, "max": 100000,
                    "tooltip": "Force this many video frames (silence pads, or the audio is cut); "
                    "0 = as long as the audio. AnyTalker rounds down to 4n+1.",
                }),
                "listeners": ("INT", {
                    "default": 0, "min": 0, "max": MAX_AUDIO_INPUTS - 1,
                    "tooltip": "Extra silent speakers after the tracks (people in the picture who only listen).",
                }),
            },
        }

    def encode(
        self, wav2vec, audio_1, timeline_mode, normalize_loudness, fps, routing_mode,
        offsets="", trim_starts="", trim_ends="", num_frames=0, listeners=0, **more_audio,
    ):
        inputs = _ordered_tracks(audio_1, more_audio)
        count = len(inputs)
        starts = parse_seconds_list(trim_starts, count, "trim_starts", require_all=False)
        ends = parse_seconds_list(trim_ends, count, "trim_ends", require_all=False)
        offsets_s = None
        if timeline_mode == "offsets":
            offsets_s = parse_seconds_list(offsets, count, "offsets", require_all=True)
        tracks = []
        for k, audio in enumerate(inputs, start=1):
            samples, rate = audio_dict_to_numpy(audio, k)
            tracks.append(prepare_track(samples, rate, k, normalize_loudness, starts[k - 1], ends[k - 1] or None))
        result = _encode_on_device(
            wav2vec, tracks, timeline_mode, fps, offsets_s, num_frames or None, routing_mode, listeners
        )
        if getattr(wav2vec, "family", None) == WAV2VEC_ANYTALKER and normalize_loudness:
            result.warnings.append("Loudness was normalised to -23 LUFS; AnyTalker's official pipeline leaves the "
                                   "level as recorded (turn normalize_loudness off for the official features).")
        picture = draw_timeline(result.activity, result.fps, [t.numpy() for t in result.tracks])
        # Shown and played on the node in ComfyUI, so turn-taking is checked before any GPU time is spent.
        ui = {**timeline_ui(picture, result.mixed, result.num_frames, result.fps),
              **comfy_bridge.notes_ui(result.warnings)}
        return {"ui": ui, "result": (result, result.mixed, result.num_frames, picture)}


def _ordered_tracks(audio_1, more_audio: dict) -> list:
    """audio_1, audio_2, ... in order; a gap (audio_3 without audio_2) is an error."""
    tracks = [audio_1]
    present = sorted(
        int(name.split("_")[1]) for name, value in more_audio.items() if name.startswith("audio_") and value is not None
    )
    for expected, k in enumerate(present, start=2):
        if k != expected:
            raise AudioInputError(
                f"audio_{k} is connected but audio_{expected} is not: connect speaker tracks in order from audio_1."
            )
        tracks.append(more_audio[f"audio_{k}"])
    return tracks


def _encode_on_device(
    wav2vec, tracks, timeline_mode, fps, offsets_s, num_frames, routing_mode, listeners
) -> SpeakerAudio:
    progress = comfy_bridge.Progress(len(tracks) + listeners, "MultiTalk audio")

    def on_track_done(index: int) -> None:
        progress.update(1, f"speaker {index + 1}")
        comfy_bridge.check_interrupt()

    device = comfy_bridge.default_device()
    wav2vec.model.to(device)
    try:
        if getattr(wav2vec, "family", None) == WAV2VEC_ANYTALKER:
            from ..models.anytalker.audio_timeline import build_anytalker_audio

            result = build_anytalker_audio(
                wav2vec, tracks, timeline_mode, fps, offsets_s, num_frames, routing_mode, listeners, on_track_done
            )
            result.warnings.extend(anytalker_notes(fps, tracks))
            return result
        return build_speaker_audio(
            wav2vec, tracks, timeline_mode, fps, offsets_s, num_frames, routing_mode, listeners, on_track_done
        )
    finally:
        wav2vec.model.to(comfy_bridge.offload_device())


def anytalker_notes(fps: float, tracks: list) -> list[str]:
    """What differs from AnyTalker's official audio path, said on the node."""
    notes = []
    if fps != ANYTALKER_FPS:
        notes.append(f"AnyTalker was trained at {ANYTALKER_FPS} fps (the official audio rate); the features are at "
                     f"{fps:g} fps as set.")
    if len(tracks) > 3:
        notes.append(f"{len(tracks)} AnyTalker identities: the official app offers 1 to 3; more run but were "
                     "never shown by the authors.")
    return notes


NODE_CLASS_MAPPINGS = {
    "MultiTalkWav2VecLoader": MultiTalkWav2VecLoader,
    "MultiTalkLoadAudio": MultiTalkLoadAudio,
    "MultiTalkAudioEncode": MultiTalkAudioEncode,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "MultiTalkWav2VecLoader": "MultiTalk wav2vec2 Loader",
    "MultiTalkLoadAudio": "MultiTalk Load Audio (path)",
    "MultiTalkAudioEncode": "MultiTalk Audio Encode",
}
