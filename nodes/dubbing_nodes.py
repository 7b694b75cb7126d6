"""Dubbing nodes: the source video (frames on the 25 fps timeline, shot cuts, soundtrack) and
the masked-dubbing settings."""
from __future__ import annotations

import logging

import torch

from ..models.dubbing.masking import DubMaskSettings
from ..models.dubbing.shots import (DEFAULT_MIN_SHOT_SECONDS, DEFAULT_THRESHOLD, detect_cuts, min_shot_frames,
                                    shot_starts)
from ..models.dubbing.source import SourceVideo, source_from_images
from ..models.dubbing.timing import start_frame
from ..models.dubbing.video_reader import read_source_video
from ..models.errors import DubbingInputError
from ..models.speakers.geometry import RESOLUTIONS
from . import comfy_bridge

CATEGORY = "MultiTalk/dubbing"
logger = logging.getLogger("MultiTalk")
SILENCE_RATE = 16000


def _video_parts(video) -> tuple:
    """(file path or None, images, fps, audio) of a VIDEO: ComfyUI's VideoFromFile / components,
    or the command line's stand-ins."""
    stream = video.get_stream_source() if callable(getattr(video, "get_stream_source", None)) else None
    if isinstance(stream, str):
        return stream, None, None, None
    if callable(getattr(video, "get_components", None)):
        parts = video.get_components()
        return None, parts.images, float(parts.frame_rate), parts.audio
    if hasattr(video, "images"):
        return None, video.images, float(video.fps), getattr(video, "audio", None)
    raise DubbingInputError(f"The video input is a {type(video).__name__}, not a VIDEO: connect Load Video.")


def _load(resolution: str, max_seconds: float, video, images, fps: float, audio) -> SourceVideo:
    if video is not None and images is not None:
        raise DubbingInputError("Both video and images are connected: connect one source (a VIDEO, or an IMAGE "
                                "batch with its fps).")
    if video is None and images is None:
        raise DubbingInputError("No source: connect a VIDEO (Load Video) or an IMAGE batch with its fps.")
    if video is not None:
        path, images, fps, audio = _video_parts(video)
        if path is not None:
            return read_source_video(path, resolution, max_seconds)
    limit = start_frame(max_seconds) if max_seconds > 0 else 0
    source = source_from_images(images, fps, resolution, limit)
    source.soundtrack = audio
    return source


def _soundtrack(source: SourceVideo) -> dict:
    if source.soundtrack is not None:
        return source.soundtrack
    source.notes.append("The source has no soundtrack: the soundtrack output is silence; connect the voice to "
                        "MultiTalk Audio Encode from a file.")
    samples = round(source.num_frames / source.fps * SILENCE_RATE)
    return {"waveform": torch.zeros(1, 1, samples), "sample_rate": SILENCE_RATE}


def _report(source: SourceVideo) -> str:
    lines = [f"{source.num_frames} frames at 25 fps ({source.num_frames / 25:.2f} s) from a "
             f"{source.source_size[1]}x{source.source_size[0]} source at {source.source_fps:g} fps; "
             f"{source.resolution} bucket {source.width}x{source.height}"]
    if len(source.shots) > 1:
        lines.append(f"{len(source.shots)} shots, starting at frames {', '.join(map(str, source.shots))}")
    return "\n".join(lines + [f"note: {n}" for n in source.notes])


class MultiTalkSourceVideo:
    DESCRIPTION = ("The video to dub: its frames are put on the 25 fps timeline of the audio (by time, whatever the "
                   "source's rate) and resized/centre-cropped to the bucket of its first frame, like a reference "
                   "image; optionally split at shot cuts (PySceneDetect) into independent segments. Every sampler "
                   "window is then anchored on the source frame at its start. See docs/dubbing.md.")
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = ("MULTITALK_SOURCE", "IMAGE", "AUDIO", "INT", "STRING")
    RETURN_NAMES = ("source", "first_frame", "soundtrack", "frame_count", "report")
    OUTPUT_TOOLTIPS = ("The source for the sampler's source_video input.",
                       "The bucketed first frame: for MultiTalk Speakers and CLIP Vision Encode.",
                       "The source's own sound, on the same clock as its frames: connect it to Audio Encode to "
                       "re-animate with the original voice (silence when there is none).",
                       "Frames of the source at 25 fps.", "What was read: size, rates, bucket, shots.")

    @classmethod
    def INPUT_TYPES(cls):
        tip = lambda text: {"tooltip": text}  # noqa: E731
        return {
            "required": {
                "resolution": (list(RESOLUTIONS), {"default": "480p", **tip(
                    "Bucket table, as on MultiTalk Speakers (use the same): the frames are resized and centre-"
                    "cropped to the bucket nearest the first frame's aspect ratio.")}),
                "split_shots": ("BOOLEAN", {"default": False, **tip(
                    "Split at shot cuts: each shot becomes an independent segment with its own first keyframe "
                    "(the official --scene_seg).")}),
                "shot_threshold": ("FLOAT", {"default": DEFAULT_THRESHOLD, "min": 1.0, "max": 255.0, "step": 0.5,
                                             **tip("Content change that counts as a cut (PySceneDetect's "
                                                   "ContentDetector; lower finds more cuts).")}),
                "min_shot_seconds": ("FLOAT", {"default": DEFAULT_MIN_SHOT_SECONDS, "min": 0.04, "max": 60.0,
                                               "step": 0.1, **tip("No shot is shorter: shorter ones join the shot "
                                                                  "before (the official drops shots of 0.5 s or "
                                                                  "less).")}),
                "max_seconds": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 36000.0, "step": 0.5, **tip(
                    "Read at most this much of the source; 0 = all of it.")}),
            },
            "optional": {
                "video": ("VIDEO", tip("The source video (Load Video). Read frame by frame at the bucket size, so "
                                       "long videos fit in memory.")),
                "images": ("IMAGE", tip("Or the source as an IMAGE batch (e.g. Get Video Components)...")),
                "fps": ("FLOAT", {"default": 25.0, "min": 1.0, "max": 240.0, "step": 0.001, **tip(
                    "...and the rate of those images.")}),
                "audio": ("AUDIO", tip("The images' soundtrack (passed to the soundtrack output).")),
            },
        }

    def load(self, resolution, split_shots, shot_threshold, min_shot_seconds, max_seconds, video=None,
             images=None, fps=25.0, audio=None):
        source = _load(resolution, float(max_seconds), video, images, float(fps), audio)
        if split_shots:
            shortest = min_shot_frames(float(min_shot_seconds))
            cuts = detect_cuts(source.frames, source.fps, float(shot_threshold), shortest)
            source.shots = shot_starts(cuts, source.num_frames, shortest)
        soundtrack = _soundtrack(source)
        for note in source.notes:
            logger.warning("MultiTalkSourceVideo: %s", note)
        first = source.first_frame()
        ui = {"images": comfy_bridge.save_temp_images(first, "multitalk_source"), **comfy_bridge.notes_ui(source.notes)}
        return {"ui": ui, "result": (source, first, soundtrack, source.num_frames, _report(source))}


class MultiTalkDubbingMask:
    DESCRIPTION = ("Masked dubbing: the sampler regenerates only the speakers' heads and keeps every other pixel "
                   "of the source video. Faces are tracked through the video (or given as masks); the head region "
                   "bounds how far the jaw and head may move. See docs/dubbing.md.")
    CATEGORY = CATEGORY
    FUNCTION = "settings"
    RETURN_TYPES = ("MULTITALK_DUB_MASK",)
    RETURN_NAMES = ("dub_mask",)
    OUTPUT_TOOLTIPS = ("For the sampler's dub_mask input (with a source_video).",)

    @classmethod
    def INPUT_TYPES(cls):
        tip = lambda text: {"tooltip": text}  # noqa: E731
        return {
            "required": {
                "margin": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 10.0, "step": 0.05, **tip(
                    "Face sizes added around each detected face: room for the jaw, hair and head motion. Larger "
                    "frees more motion and regenerates more background.")}),
                "feather": ("INT", {"default": 16, "min": 0, "max": 512, **tip(
                    "Pixels over which the generated head fades into the source; beyond them every pixel is the "
                    "source's.")}),
                "detect_every": ("INT", {"default": 4, "min": 1, "max": 250, **tip(
                    "Frames between face detections when tracking (1 = every frame, slower).")}),
            },
            "optional": {
                "masks": ("MASK", tip("Regions to regenerate instead of tracked faces: one mask for the whole "
                                      "video, one per source frame, or one per 25 fps frame (1 = regenerate).")),
            },
        }

    def settings(self, margin, feather, detect_every, masks=None):
        return (DubMaskSettings(float(margin), float(feather), int(detect_every), masks),)


NODE_CLASS_MAPPINGS = {"MultiTalkSourceVideo": MultiTalkSourceVideo, "MultiTalkDubbingMask": MultiTalkDubbingMask}
NODE_DISPLAY_NAME_MAPPINGS = {"MultiTalkSourceVideo": "MultiTalk Source Video (dubbing)",
                              "MultiTalkDubbingMask": "MultiTalk Dubbing Mask (heads only)"}
