"""Command-line stand-ins for the ComfyUI core nodes the shipped workflows use.

Same input names, outputs and conventions as ComfyUI's (LoadImage's MASK is 1 - alpha, so
what was painted in the mask editor is 1; no alpha gives a 64x64 zero mask), built on PIL,
soundfile/PyAV and models/video_io. Files are found by path or in the input folder; outputs go
to the output folder, or beside the video named by --output.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch

from ..models.errors import MultiTalkError
from ..models.output_files import atomic_write, check_output, note_input, numbered_path
from .values import WorkflowError


@dataclass
class RunContext:
    input_dir: str = "."
    output_dir: str = "output"
    output_video: Optional[str] = None  # --output: the one video SaveVideo writes
    saved: list[str] = field(default_factory=list)  # every file written, in order

    def locate_input(self, name: str) -> Optional[str]:
        """The file (or folder) `name` means, as a path or in the input folder; None if neither."""
        name = re.sub(r"\s*\[(input|output|temp)\]$", "", str(name).strip())  # ComfyUI's annotated names
        for path in (os.path.expanduser(name), os.path.join(self.input_dir, name)):
            if name and os.path.exists(path):
                return path
        return None

    def find_input(self, name: str, what: str) -> str:
        path = self.locate_input(name)
        if path is None or not os.path.isfile(path):
            raise MultiTalkError(f"Cannot find the {what} '{name}' as a path or in the input folder "
                                 f"'{self.input_dir}': give a full path with --set, or use --input-dir.")
        note_input(path)
        return path

    def output_path(self, prefix: str, label: str, ext: str) -> str:
        """Beside --output as <stem>_<label>.<ext>; else ComfyUI's <prefix>_00001_.<ext> in the output folder
        (check_output then numbers a name that exists)."""
        if self.output_video:
            stem = os.path.splitext(self.output_video)[0].rstrip("_")  # talk_00001_.mp4 -> talk_00001_label.png
            return f"{stem}_{label}.{ext}"
        return numbered_path(os.path.join(self.output_dir, prefix), f".{ext}")

    def record(self, path: str) -> None:
        self.saved.append(path)
        print(f"saved {path}", flush=True)


@dataclass
class VideoParts:
    """The VIDEO socket outside ComfyUI: frames, rate and optional soundtrack."""

    images: torch.Tensor  # [F, H, W, 3] 0..1
    fps: float
    audio: Optional[dict] = None


class _StandIn:
    CLASS_TYPE = ""

    def __init__(self, context: RunContext):
        self.context = context


def _open_image(path: str):
    from PIL import Image, ImageOps

    try:
        return ImageOps.exif_transpose(Image.open(path))
    except Exception as exc:
        raise MultiTalkError(f"Cannot read the image '{path}' ({exc}): use a PNG, JPEG or WebP file.") from exc


def _alpha_mask(image) -> Optional[torch.Tensor]:
    """[1, H, W] = 1 - alpha, or None when the image has no transparency."""
    if "A" not in image.getbands() and not (image.mode == "P" and "transparency" in image.info):
        return None
    alpha = np.asarray(image.convert("RGBA").getchannel("A"), dtype=np.float32) / 255.0
    return 1.0 - torch.from_numpy(alpha)[None]


class LoadImage(_StandIn):
    CLASS_TYPE = "LoadImage"
    FUNCTION = "load_image"

    def load_image(self, image: str):
        picture = _open_image(self.context.find_input(image, "image"))
        pixels = torch.from_numpy(np.asarray(picture.convert("RGB"), dtype=np.float32) / 255.0)[None]  # [1,H,W,3]
        mask = _alpha_mask(picture)
        return (pixels, mask if mask is not None else torch.zeros(1, 64, 64))


class LoadImageMask(_StandIn):
    CLASS_TYPE = "LoadImageMask"
    FUNCTION = "load_image"

    def load_image(self, image: str, channel: str):
        picture = _open_image(self.context.find_input(image, "mask image")).convert("RGBA")
        values = torch.from_numpy(np.asarray(picture.getchannel(channel[0].upper()), dtype=np.float32) / 255.0)
        return ((1.0 - values if channel == "alpha" else values)[None],)


class LoadAudio(_StandIn):
    CLASS_TYPE = "LoadAudio"
    FUNCTION = "load"

    def load(self, audio: str):
        from ..models.audio import read_audio_file

        samples, rate = read_audio_file(self.context.find_input(audio, "audio file"))  # [C, T]
        return ({"waveform": torch.from_numpy(samples)[None], "sample_rate": int(rate)},)


@dataclass
class VideoFile:
    """LoadVideo's VIDEO outside ComfyUI: the file, read by whoever takes it (like VideoFromFile)."""

    path: str

    def get_stream_source(self) -> str:
        return self.path


class LoadVideo(_StandIn):
    CLASS_TYPE = "LoadVideo"
    FUNCTION = "load"

    def load(self, file: str):
        return (VideoFile(self.context.find_input(file, "video file")),)


class CreateVideo(_StandIn):
    CLASS_TYPE = "CreateVideo"
    FUNCTION = "create"

    def create(self, images: torch.Tensor, fps: float, audio: Optional[dict] = None):
        return (VideoParts(images, float(fps), audio),)


class SaveVideo(_StandIn):
    CLASS_TYPE = "SaveVideo"
    FUNCTION = "save"
    OUTPUT_NODE = True

    @staticmethod
    def planned(context: RunContext, inputs: dict) -> list[tuple[str, str]]:
        """(path, kind) of the file this node would write: checked before the run starts."""
        return [(context.output_video or context.output_path(str(inputs.get("filename_prefix", "")), "video", "mp4"),
                 "video")]

    def save(self, video: VideoParts, filename_prefix: str, format: str, codec: str):  # noqa: A002 (ComfyUI's name)
        from ..models.video_io import write_mp4

        if self.context.output_video and self.context.output_video in self.context.saved:
            raise WorkflowError("--output names one video, but this workflow saves several: leave out --output "
                                "and find them in the output folder.")
        (planned, kind), = self.planned(self.context, {"filename_prefix": filename_prefix})
        path = check_output(planned, kind=kind)
        with atomic_write(path) as temporary:  # an interrupted write leaves an existing file as it was
            write_mp4(temporary, video.images, video.fps, video.audio)
        self.context.record(path)
        return {"ui": {"files": [path]}, "result": ()}


def _picture_name(label: str, count: int, k: int) -> str:
    return label if count == 1 else f"{label}_{k + 1:02d}"


def _save_images(context: RunContext, images: torch.Tensor, prefix: str, label: str) -> dict:
    from PIL import Image

    paths = []
    for k, image in enumerate(images):
        path = check_output(context.output_path(prefix, _picture_name(label, len(images), k), "png"), kind="image")
        pixels = (image.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        with atomic_write(path) as temporary:
            Image.fromarray(pixels).save(temporary, format="PNG")
        context.record(path)
        paths.append(path)
    return {"ui": {"files": paths}, "result": ()}


def _label(prefix: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", os.path.basename(prefix)).strip("_").lower() or "image"


class SaveImage(_StandIn):
    CLASS_TYPE = "SaveImage"
    FUNCTION = "save_images"
    OUTPUT_NODE = True

    @staticmethod
    def planned(context: RunContext, inputs: dict) -> list[tuple[str, str]]:
        """The file of a one-picture batch (larger batches add _01, _02, ... to the name)."""
        prefix = str(inputs.get("filename_prefix", "ComfyUI"))
        return [(context.output_path(prefix, _label(prefix), "png"), "image")]

    def save_images(self, images: torch.Tensor, filename_prefix: str = "ComfyUI"):
        return _save_images(self.context, images, filename_prefix, _label(filename_prefix))


class PreviewImage(_StandIn):
    CLASS_TYPE = "PreviewImage"
    FUNCTION = "save_images"
    OUTPUT_NODE = True

    @staticmethod
    def planned(context: RunContext, inputs: dict) -> list[tuple[str, str]]:
        return [(context.output_path("preview", "preview", "png"), "image")]

    def save_images(self, images: torch.Tensor):  # outside ComfyUI a preview is a file beside the output
        return _save_images(self.context, images, "preview", "preview")


STAND_INS = (LoadImage, LoadImageMask, LoadAudio, LoadVideo, CreateVideo, SaveVideo, SaveImage, PreviewImage)


def stand_in_factories(context: RunContext) -> dict:
    """class_type -> a function making that stand-in bound to `context`."""
    return {cls.CLASS_TYPE: (lambda cls=cls: cls(context)) for cls in STAND_INS}
