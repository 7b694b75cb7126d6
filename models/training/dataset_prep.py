"""Dataset preparation: a folder of clips -> windows encoded once into the training cache.

Each clip is read at 25 fps, bucketed like the sampler's reference image (models/speakers),
cut into windows of 4n+1 frames and encoded with the VAE, wav2vec, the text encoder and CLIP
vision. Clips that cannot be used are skipped with the reason; see cache.py for the format.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from itertools import chain
from typing import Any, Callable, Iterator, Optional

import numpy as np
import torch

from ..audio import build_speaker_audio, prepare_track, read_audio_file
from ..audio.windows import window_indices
from ..dit.config import CLIP_TOKENS
from ..errors import DatasetInputError, MultiTalkError
from ..output_files import atomic_write, check_output, note_input
from ..sampling.conditioning import encode_frames, window_condition
from ..speakers import build_speaker_layout
from ..speakers.layout import SpeakerLayout
from .cache import AUDIO_CONTEXT, MANIFEST, write_window
from .clip_folder import ClipSource, find_clips
from .video_clips import TRAIN_FPS, bucket_frame, frames_at_fps, iter_windows


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

    def validate(self) -> None:
        if self.window < 5 or (self.window - 1) % 4:
            raise DatasetInputError(f"Window of {self.window} frames: it must be 4n+1 and at least 5 (e.g. 81).")
        if self.stride < 0 or self.max_windows_per_clip < 0:
            raise DatasetInputError(f"stride ({self.stride}) and max windows per clip ({self.max_windows_per_clip}) "
                                    "must be >= 0.")


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
    for path in [clip.video, clip.caption, *(clip.speaker_audio or []), *clip.masks.values()]:
        if path is not None:
            note_input(path)


def _clip_audio(clip: ClipSource, wav2vec: Any) -> tuple[list[torch.Tensor], int, list[str]]:
    """Per-speaker wav2vec features [T, L, C] on one parallel timeline, T frames, notes."""
    paths = clip.speaker_audio or [clip.video]
    tracks = []
    for number, path in enumerate(paths, start=1):
        try:
            samples, rate = read_audio_file(path)
            tracks.append(prepare_track(samples, rate, number))
        except MultiTalkError as exc:
            if clip.speaker_audio is None:
                raise DatasetInputError(f"Clip '{clip.name}' has no '{clip.name}.speaker1.wav' and its video has no "
                                        f"usable soundtrack ({exc}). Add one audio file per speaker.") from None
            raise DatasetInputError(f"Clip '{clip.name}', speaker {number}: {exc}") from None
    speaker_audio = build_speaker_audio(wav2vec, tracks, "parallel", fps=TRAIN_FPS, routing_mode="masked")
    notes = [f"{clip.name}: {w}" for w in speaker_audio.warnings]
    return speaker_audio.features, speaker_audio.num_frames, notes


def _caption(clip: ClipSource) -> tuple[str, list[str]]:
    if clip.caption is None:
        return "", [f"{clip.name}: no caption file '{clip.name}.txt'; trained with an empty caption."]
    with open(clip.caption, encoding="utf-8", errors="replace") as handle:
        return handle.read().strip(), []


def _read_mask(path: str) -> torch.Tensor:
    from PIL import Image

    try:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    except Exception as exc:
        raise DatasetInputError(f"Cannot read the mask '{path}' ({exc}): save it as a PNG, white on the speaker.") \
            from None
    return torch.from_numpy(pixels)[None]  # [1, H, W]


def _layout(clip: ClipSource, first: np.ndarray, resolution: str) -> SpeakerLayout:
    image = torch.from_numpy(first).float().div(255.0)[None]  # [1, H, W, 3]
    masks = [(_read_mask(clip.masks[k]) if k in clip.masks else None) for k in range(1, clip.num_speakers + 1)]
    try:
        return build_speaker_layout(image, clip.num_speakers, resolution, masks=masks)
    except MultiTalkError as exc:
        raise DatasetInputError(f"Clip '{clip.name}': {exc}") from None


class _Counter:
    """Counts the frames an iterator has produced (for the too-short message)."""

    def __init__(self, frames: Iterator[np.ndarray]):
        self.frames, self.count = frames, 0

    def __iter__(self) -> Iterator[np.ndarray]:
        for frame in self.frames:
            self.count += 1
            yield frame


def _encode_window(encoders: DatasetEncoders, frames: np.ndarray, start: int, features: list[torch.Tensor],
                   layout: SpeakerLayout, text: torch.Tensor) -> dict[str, torch.Tensor]:
    pixels = torch.from_numpy(frames).float().div(255.0)  # [F, H, W, 3]
    count = pixels.shape[0]
    y, _ = window_condition(encoders.vae, pixels[:1], count)  # [1, 20, T, h, w]
    clip = encoders.clip_vision.encode_image(pixels[:1], crop=False).penultimate_hidden_states[0].float()
    if clip.shape[0] != CLIP_TOKENS:
        raise DatasetInputError(f"CLIP vision gives {clip.shape[0]} tokens per image; the DiT needs {CLIP_TOKENS} "
                                "(CLIP ViT-H/14 at 224 px): load clip_vision_h.")
    rows = window_indices(features[0].shape[0], start - AUDIO_CONTEXT, count + 2 * AUDIO_CONTEXT, 1)[:, 0]
    return {
        "latents": encode_frames(encoders.vae, pixels)[0],  # [16, T, h, w]
        "y": y[0],
        "audio": torch.stack([f[rows] for f in features]),  # [S, F + 4, L, C]
        "text": text,
        "clip": clip,
        "masks": layout.latent_masks(),  # [S + 1, h, w]
    }


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
    features, audio_frames, notes = _clip_audio(clip, encoders.wav2vec)
    caption, caption_notes = _caption(clip)
    text = encoders.text.encode(caption)[0].float()  # [L, D]
    report = ClipReport(clip.name, notes=notes + caption_notes)
    layout = _layout(clip, first, settings.resolution)
    report.notes += [f"{clip.name}: {n}" for n in layout.notes]
    target = (layout.height, layout.width)
    counter = _Counter(bucket_frame(f, target) for f in chain([first], frames))
    stride = settings.stride or settings.window
    for index, start, window in iter_windows(iter(counter), settings.window, stride, settings.max_windows_per_clip):
        if start + settings.window > audio_frames:
            report.notes.append(f"{clip.name}: the audio ends at frame {audio_frames}; windows from frame {start} on "
                                "were left out.")
            break
        tensors = _encode_window(encoders, window, start, features, layout, text)
        name = f"{clip.name}_w{index:04d}.safetensors"
        path = check_output(os.path.join(cache_folder, name), overwrite=True, kind=None)  # never over a clip file
        write_window(path, tensors, _window_meta(clip, index, start, tensors, caption))
        report.windows.append(name)
        if on_window is not None:
            on_window(name)
    if not report.windows:
        frames_had = min(counter.count, audio_frames)
        raise DatasetInputError(
            f"Clip '{os.path.basename(clip.video)}' has {counter.count} video frames and {audio_frames} audio frames "
            f"at 25 fps ({frames_had / TRAIN_FPS:.2f} s usable), shorter than one window of {settings.window} "
            "frames. Use a longer clip or a smaller window.")
    return report


def _window_meta(clip: ClipSource, index: int, start: int, tensors: dict, caption: str) -> dict:
    audio = tensors["audio"]
    return {"source": os.path.basename(clip.video), "window_index": index, "start_frame": start,
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
