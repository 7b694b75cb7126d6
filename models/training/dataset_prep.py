"""Dataset preparation: a folder of clips -> windows encoded once into the training cache.

Each clip is read at 25 fps on its own clock (pictures and sound aligned on the streams' start
times), split at shot cuts, bucketed like the sampler's reference image (models/speakers), cut
into windows of 4n+1 frames inside each shot and encoded with the VAE, wav2vec, the text
encoder and CLIP vision, with each window's speaker masks from its own first frame. Windows
whose speakers show no face, or whose sound is clearly out of sync with the mouths, are left
out; clips left with no window are skipped with the reason. See cache.py for the format.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from itertools import chain
from typing import Any, Callable, Iterator, Optional

import numpy as np
import torch

from ..audio.windows import window_indices
from ..dit.config import CLIP_TOKENS
from ..errors import DatasetInputError
from ..output_files import atomic_write, check_output, note_input
from ..sampling.conditioning import encode_frames, window_condition
from ..sampling.plan import DEFAULT_MOTION_FRAMES
from ..speakers.geometry import choose_bucket
from ..speakers.layout import SpeakerLayout
from .av_sync import speaker_faces, unsynchronised
from .cache import AUDIO_CONTEXT, MANIFEST, write_window
from .clip_audio import ClipAudio, read_clip_audio
from .clip_folder import ClipSource, find_clips
from .preview import speech_samples
from .scenes import shot_ranges
from .video_clips import TRAIN_FPS, frames_at_fps, iter_shot_windows
from .window_layout import NoUsableFace, WindowRegions


@dataclass
class DatasetEncoders:
    """The models that encode a clip (the same ones the sampler uses)."""

    vae: Any  # .encode(IMAGE [F, H, W, 3]) -> raw latents [1, 16, T, h, w] (WanVAE or ComfyUI's VAE)
    wav2vec: Any  # models.audio.Wav2VecEncoder
    text: Any  # .encode(str) -> [1, L, D] (models.encoders.WanTextEncoder)
    clip_vision: Any  # .encode_image(IMAGE, crop=False) -> .penultimate_hidden_states [1, 257, Dc]


@dataclass
class PrepareSettings:
    window: int = 81  # frames per training window (4n+1)
    stride: int = 0  # frames between window starts; 0: the window length (no overlap)
    resolution: str = "480p"  # bucket table of models/speakers (480p, 720p; 240p/120p drafts)
    max_windows_per_clip: int = 0  # 0: every window that fits
    require_faces: bool = True  # talking windows need every speaker found as a face (off: strips)
    max_av_offset: int = 3  # frames the sound may be off the mouths before a window is skipped; -1: no check
    split_shots: bool = True  # windows never straddle a shot cut
    motion_multitalk: int = DEFAULT_MOTION_FRAMES["multitalk"]  # known frames of MultiTalk continuations
    motion_infinitetalk: int = DEFAULT_MOTION_FRAMES["infinitetalk"]  # motion frames of InfiniteTalk ones

    def validate(self) -> None:
        if self.window < 5 or (self.window - 1) % 4:
            raise DatasetInputError(f"Window of {self.window} frames: it must be 4n+1 and at least 5 (e.g. 81).")
        if self.stride < 0 or self.max_windows_per_clip < 0:
            raise DatasetInputError(f"stride ({self.stride}) and max windows per clip ({self.max_windows_per_clip}) "
                                    "must be >= 0.")
        if self.max_av_offset < -1 or self.motion_multitalk < 1 or self.motion_infinitetalk < 1:
            raise DatasetInputError(f"max_av_offset ({self.max_av_offset}) must be >= -1 and the motion frames "
                                    f"({self.motion_multitalk}, {self.motion_infinitetalk}) >= 1.")


@dataclass
class ClipReport:
    name: str
    windows: list[str] = field(default_factory=list)  # window file names in the cache
    notes: list[str] = field(default_factory=list)


@dataclass
class PrepareSummary:
    cache_folder: str
    windows: list[str]
    skipped: list[tuple[str, str]]  # (clip file, reason)
    notes: list[str]

    def text(self) -> str:
        lines = [f"{len(self.windows)} training windows in '{self.cache_folder}'."]
        lines += [f"skipped {clip}: {reason}" for clip, reason in self.skipped]
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


def note_clip_files(clip: ClipSource) -> None:
    """Record every file of a clip as read, so no cache file may be written over one."""
    for path in [clip.video, clip.caption, clip.mix, clip.rttm, clip.boxes, *(clip.speaker_audio or []),
                 *clip.masks.values(), *clip.mask_videos.values()]:
        if path is not None:
            note_input(path)


def _caption(clip: ClipSource) -> tuple[str, list[str]]:
    if clip.caption is None:
        return "", [f"{clip.name}: no caption file '{clip.name}.txt'; trained with an empty caption."]
    with open(clip.caption, encoding="utf-8", errors="replace") as handle:
        return handle.read().strip(), []


class _Counter:
    """Counts the frames an iterator has produced (for the too-short message)."""

    def __init__(self, frames: Iterator[np.ndarray]):
        self.frames, self.count = frames, 0

    def __iter__(self) -> Iterator[np.ndarray]:
        for frame in self.frames:
            self.count += 1
            yield frame


def _condition(encoders: DatasetEncoders, known: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(y [20, T, h, w], CLIP features [257, Dc]) of a window whose first frames `known` [k, H, W, 3] are
    given (CLIP sees the last known frame, as the sampler's chained windows do)."""
    y, _ = window_condition(encoders.vae, known, count)
    clip = encoders.clip_vision.encode_image(known[-1:], crop=False).penultimate_hidden_states[0].float()
    if clip.shape[0] != CLIP_TOKENS:
        raise DatasetInputError(f"CLIP vision gives {clip.shape[0]} tokens per image; the DiT needs {CLIP_TOKENS} "
                                "(CLIP ViT-H/14 at 224 px): load clip_vision_h.")
    return y[0], clip


def _encode_window(encoders: DatasetEncoders, frames: np.ndarray, reference: np.ndarray, start: int,
                   audio: ClipAudio, layout: SpeakerLayout, text: torch.Tensor,
                   settings: PrepareSettings) -> dict[str, torch.Tensor]:
    pixels = torch.from_numpy(frames).float().div(255.0)  # [F, H, W, 3]
    count = pixels.shape[0]
    y, clip = _condition(encoders, pixels[:1], count)
    if audio.talking:
        rows = window_indices(audio.features[0].shape[0], start - AUDIO_CONTEXT, count + 2 * AUDIO_CONTEXT, 1)[:, 0]
        sound = torch.stack([f[rows] for f in audio.features])  # [S, F + 4, L, C]
        extra = {"speech": speech_samples(audio.tracks, start, count)}
    else:
        sound, extra = audio.silent_window(count + 2 * AUDIO_CONTEXT), {}
    tensors = {"latents": encode_frames(encoders.vae, pixels)[0], "y": y, "audio": sound, "text": text,
               "clip": clip, "masks": layout.latent_masks(), **extra}
    if settings.motion_multitalk < count:  # known frames of a MultiTalk continuation
        tensors["y_motion"], tensors["clip_motion"] = _condition(encoders, pixels[:settings.motion_multitalk], count)
    if settings.motion_infinitetalk < count:  # InfiniteTalk: the shot's reference frame anchors every window
        same = np.array_equal(reference, frames[0])
        tensors["y_ref"], tensors["clip_ref"] = (y, clip) if same else \
            _condition(encoders, torch.from_numpy(reference.copy()).float().div(255.0)[None], count)
    return tensors


def _window_problem(regions: WindowRegions, audio: ClipAudio, start: int, raw_first: np.ndarray,
                    frames: np.ndarray, settings: PrepareSettings) -> tuple[Optional[SpeakerLayout], Optional[str]]:
    """(layout, None) for a usable window, (None, why not) otherwise."""
    try:
        layout, faces = regions.layout(start, raw_first, audio.talking)
    except NoUsableFace as exc:
        return None, str(exc)
    if audio.talking and settings.max_av_offset >= 0:
        reason = unsynchronised(frames, speaker_faces(faces, layout.masks), audio.tracks, start,
                                settings.max_av_offset)
        if reason:
            return None, f"{reason} (frames {start}..{start + frames.shape[0] - 1})"
    return layout, None


def prepare_clip(clip: ClipSource, cache_folder: str, encoders: DatasetEncoders, settings: PrepareSettings,
                 on_window: Optional[Callable[[str], None]] = None) -> ClipReport:
    """Encode one clip's windows into the cache; DatasetInputError when none can be made."""
    settings.validate()
    note_clip_files(clip)
    os.makedirs(cache_folder, exist_ok=True)
    frames = frames_at_fps(clip.video)
    first = next(frames, None)  # opens the video first: an unreadable one is reported as such
    if first is None:
        raise DatasetInputError(f"The video '{clip.video}' has no frames.")
    audio = read_clip_audio(clip, encoders.wav2vec)
    caption, caption_notes = _caption(clip)
    text = encoders.text.encode(caption)[0].float()  # [L, D]
    report = ClipReport(clip.name, notes=audio.notes + caption_notes)
    regions = WindowRegions(clip, settings.resolution, settings.require_faces)
    shots = shot_ranges(clip.video) if settings.split_shots else [(0, float("inf"))]
    if len(shots) > 1:
        report.notes.append(f"{clip.name}: {len(shots)} shots (cuts at frames {[s for s, _ in shots[1:]]}); "
                            "no window straddles a cut.")
    target = choose_bucket(first.shape[0], first.shape[1], settings.resolution)
    counter = _Counter(chain([first], frames))
    skipped: list[str] = []
    for start, raw_first, reference, window in iter_shot_windows(iter(counter), shots, settings.window,
                                                                 settings.stride or settings.window, target):
        if audio.talking and start + settings.window > audio.frames:
            report.notes.append(f"{clip.name}: the audio ends at frame {audio.frames}; windows from frame {start} on "
                                "were left out.")
            break
        layout, problem = _window_problem(regions, audio, start, raw_first, window, settings)
        if problem:
            skipped.append(problem)
            continue
        report.notes += [f"{clip.name}: {n}" for n in layout.notes if n not in report.notes]
        tensors = _encode_window(encoders, window, reference, start, audio, layout, text, settings)
        name = f"{clip.name}_w{len(report.windows):04d}.safetensors"
        meta = _window_meta(clip, len(report.windows), start, tensors, caption, audio, settings)
        path = check_output(os.path.join(cache_folder, name), overwrite=True, kind=None)  # never over a clip file
        write_window(path, tensors, meta)
        report.windows.append(name)
        if on_window is not None:
            on_window(name)
        if settings.max_windows_per_clip and len(report.windows) >= settings.max_windows_per_clip:
            break
    if not report.windows:
        raise DatasetInputError(_no_window_reason(clip, counter.count, audio, skipped, settings))
    report.notes += [f"{clip.name}: window left out: {reason}" for reason in skipped]
    return report


def _no_window_reason(clip: ClipSource, video_frames: int, audio: ClipAudio, skipped: list[str],
                      settings: PrepareSettings) -> str:
    if skipped:
        more = f" (and {len(skipped) - 1} more windows)" if len(skipped) > 1 else ""
        return f"Clip '{os.path.basename(clip.video)}': {skipped[0]}{more}."
    frames_had = min(video_frames, audio.frames) if audio.talking else video_frames
    sound = f" and {audio.frames} audio frames" if audio.talking else ""
    return (f"Clip '{os.path.basename(clip.video)}' has {video_frames} video frames{sound} at 25 fps "
            f"({frames_had / TRAIN_FPS:.2f} s usable), shorter than one window of {settings.window} frames "
            "(in one shot). Use a longer clip or a smaller window.")


def _window_meta(clip: ClipSource, index: int, start: int, tensors: dict, caption: str, sound: ClipAudio,
                 settings: PrepareSettings) -> dict:
    audio = tensors["audio"]
    motion = {f"motion_{mode}": frames for mode, frames, key in (
        ("multitalk", settings.motion_multitalk, "y_motion"), ("infinitetalk", settings.motion_infinitetalk, "y_ref"))
        if key in tensors}
    return {"source": os.path.basename(clip.video), "window_index": index, "start_frame": start,
            "task": "talk" if sound.talking else "i2v", **motion,
            "frames": audio.shape[1] - 2 * AUDIO_CONTEXT, "speakers": audio.shape[0], "caption": caption,
            "latent_channels": tensors["latents"].shape[0], "text_dim": tensors["text"].shape[-1],
            "clip_dim": tensors["clip"].shape[-1], "audio_layers": audio.shape[2], "audio_hidden": audio.shape[3]}


def _remove_previous(cache_folder: str) -> None:
    """Delete the windows an earlier run listed, so a re-run never mixes old and new windows."""
    manifest = os.path.join(cache_folder, MANIFEST)
    if not os.path.isfile(manifest):
        return
    with open(manifest, encoding="utf-8") as handle:
        for name in json.load(handle).get("windows", []):
            path = os.path.join(cache_folder, os.path.basename(name))
            if os.path.isfile(path):
                os.remove(check_output(path, overwrite=True, kind=None))  # a window, never an input


def prepare_dataset(clips_folder: str, cache_folder: str, encoders: DatasetEncoders,
                    settings: Optional[PrepareSettings] = None,
                    progress: Callable[[int, int, str], None] = lambda done, total, message: None,
                    check_interrupt: Callable[[], None] = lambda: None) -> PrepareSummary:
    """Encode every usable clip of `clips_folder` into `cache_folder`; progress(done, total, message)
    after each clip.

    Unusable clips are skipped and listed with the reason; DatasetInputError when none is usable."""
    settings = settings or PrepareSettings()
    settings.validate()
    clips, skipped = find_clips(clips_folder)
    cache_folder = os.path.expanduser(str(cache_folder).strip())
    if not cache_folder:
        raise DatasetInputError("No cache folder given: type where the encoded windows should be written.")
    for clip in clips:
        note_clip_files(clip)
    check_output(os.path.join(cache_folder, MANIFEST), overwrite=True, kind=None)  # before any encoding
    os.makedirs(cache_folder, exist_ok=True)
    _remove_previous(cache_folder)
    windows, notes = [], []
    for done, clip in enumerate(clips, start=1):
        check_interrupt()
        try:
            report = prepare_clip(clip, cache_folder, encoders, settings, on_window=lambda _: check_interrupt())
        except DatasetInputError as exc:
            skipped.append((os.path.basename(clip.video), str(exc)))
        else:
            windows += report.windows
            notes += report.notes
        progress(done, len(clips), f"{clip.name}: {len(windows)} windows so far")
    summary = PrepareSummary(cache_folder, windows, skipped, notes)
    _write_manifest(summary, settings)
    if not windows:
        raise DatasetInputError(f"No training window could be made from '{clips_folder}':\n" + summary.text())
    return summary


def _write_manifest(summary: PrepareSummary, settings: PrepareSettings) -> None:
    manifest = {"format": 1, "fps": TRAIN_FPS, "settings": settings.__dict__, "windows": summary.windows,
                "skipped": [{"clip": c, "reason": r} for c, r in summary.skipped], "notes": summary.notes}
    path = check_output(os.path.join(summary.cache_folder, MANIFEST), overwrite=True, kind=None)
    with atomic_write(path) as temporary, open(temporary, "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=2, ensure_ascii=False)
