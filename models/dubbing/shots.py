"""Shot cuts of a source video (PySceneDetect) and the segments they split a dub into.

The detectors are the official scene segmentation's (wan/utils/segvideo.py:5-10): content,
adaptive and threshold (fade) detectors at their defaults, the content threshold adjustable.
They run on the source's resampled, bucketed frames, through a small in-memory VideoStream, so
cut frames are timeline frames. Shots shorter than a minimum are merged into the shot before
(the official drops them, which would lose frames of the audio).
"""
from __future__ import annotations

import math
from fractions import Fraction
from typing import Sequence

import numpy as np
import torch

from ..errors import DubbingInputError
from .timing import TIMELINE_FPS

DEFAULT_THRESHOLD = 27.0  # ContentDetector's default
DEFAULT_MIN_SHOT_SECONDS = 0.5  # the official drops shots this short


def _memory_stream(frames: torch.Tensor, fps: float):
    """A PySceneDetect VideoStream over uint8 RGB frames [F, H, W, 3] (read once, forward)."""
    from scenedetect import FrameTimecode
    from scenedetect.video_stream import VideoStream

    class MemoryStream(VideoStream):
        BACKEND_NAME = "multitalk_memory"

        def __init__(self):
            self._next = 0

        path = name = property(lambda self: "source video")
        is_seekable = property(lambda self: False)
        frame_rate = property(lambda self: Fraction(fps).limit_denominator(1001))
        duration = property(lambda self: FrameTimecode(frames.shape[0], self.frame_rate))
        frame_size = property(lambda self: (int(frames.shape[2]), int(frames.shape[1])))
        aspect_ratio = property(lambda self: 1.0)
        position = property(lambda self: FrameTimecode(max(self._next - 1, 0), self.frame_rate))
        position_ms = property(lambda self: max(self._next - 1, 0) * 1000.0 / fps)
        frame_number = property(lambda self: self._next)

        def read(self, decode: bool = True):
            if self._next >= frames.shape[0]:
                return False
            self._next += 1
            return np.ascontiguousarray(frames[self._next - 1].numpy()[..., ::-1]) if decode else True  # BGR

        def reset(self) -> None:
            self._next = 0

        def seek(self, target) -> None:
            raise NotImplementedError("the in-memory source is read once, from the start")

    return MemoryStream()


def detect_cuts(frames: torch.Tensor, fps: float = TIMELINE_FPS, threshold: float = DEFAULT_THRESHOLD,
                min_frames: int = 15) -> list[int]:
    """First frame of every shot after the first, for uint8 RGB frames [F, H, W, 3]; no shot
    shorter than `min_frames` (15 is the detectors' default)."""
    from scenedetect import AdaptiveDetector, ContentDetector, SceneManager, ThresholdDetector

    if not 0 < threshold <= 255:
        raise DubbingInputError(f"shot_threshold is {threshold}: use a value from 1 to 255 (27 is PySceneDetect's "
                                "default; lower finds more cuts).")
    manager = SceneManager()
    detectors = (ContentDetector(threshold=threshold, min_scene_len=min_frames),
                 AdaptiveDetector(min_scene_len=min_frames), ThresholdDetector(min_scene_len=min_frames))
    for detector in detectors:
        manager.add_detector(detector)
    manager.auto_downscale = True
    manager.detect_scenes(_memory_stream(frames, fps))
    scenes = manager.get_scene_list(start_in_scene=True)  # [(start, end)], the first from frame 0
    cuts = sorted({round(start.seconds * fps) for start, _ in scenes[1:]})
    return [c for c in cuts if 0 < c < frames.shape[0]]


def shot_starts(cuts: Sequence[int], total: int, min_frames: int) -> list[int]:
    """Segment starts from cut frames: [0, ...], with shots shorter than `min_frames` merged
    into the one before (a short first shot into the one after)."""
    starts = [0] + sorted(c for c in set(cuts) if 0 < c < total)
    merged = [0]
    for start, end in zip(starts[1:], starts[2:] + [total]):
        # a short shot's start is dropped (it joins the shot before); so is the start of the
        # shot after a short first shot (the first segment starts at 0 whatever happens)
        if end - start >= min_frames and start - merged[-1] >= min_frames:
            merged.append(start)
    return merged


def min_shot_frames(seconds: float, fps: float = TIMELINE_FPS) -> int:
    return max(1, math.ceil(seconds * fps - 1e-9))
