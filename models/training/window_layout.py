"""Speaker placement for each training window, from that window's own first frame.

People move and shots change, so every window gets its speaker masks from its first frame:
per-frame masks (`clip.maskK.mp4`) or boxes (`clip.boxes.csv`) when the user gave them, else
static masks (`clip.maskK.png`), else faces detected in that frame. A talking window whose
speakers cannot all be found as faces has no usable face and is skipped (unless faces are not
required, e.g. for drawn characters the detector does not know: then strips are used).
"""
from __future__ import annotations

import csv
from typing import Callable, Iterator, Optional

import numpy as np
import torch

from ..errors import DatasetInputError, MultiTalkError
from ..speakers import build_speaker_layout
from ..speakers.detect import Face, detect_faces
from ..speakers.layout import SpeakerLayout
from ..speakers.regions import Box
from .clip_folder import ClipSource
from .video_clips import frames_at_fps

FaceDetector = Callable[[np.ndarray], list[Face]]


class NoUsableFace(DatasetInputError):
    """A window whose speakers are not all visible as faces."""


def read_mask_image(path: str) -> torch.Tensor:
    from PIL import Image

    try:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    except Exception as exc:
        raise DatasetInputError(f"Cannot read the mask '{path}' ({exc}): save it as a PNG, white on the speaker.") \
            from None
    return torch.from_numpy(pixels)[None]  # [1, H, W]


def read_box_table(path: str) -> dict[int, list[tuple[int, Box]]]:
    """speaker (1-based) -> [(first frame, box)] sorted, from rows `frame,speaker,x,y,w,h`."""
    table: dict[int, list[tuple[int, Box]]] = {}
    with open(path, newline="", encoding="utf-8") as handle:
        for number, row in enumerate(csv.reader(handle), start=1):
            if not row or row[0].strip().lower() in ("frame", "") or row[0].startswith("#"):
                continue
            try:
                frame, speaker = int(row[0]), int(row[1])
                box = Box(*(float(v) for v in row[2:6]))
            except (ValueError, TypeError, IndexError):
                raise DatasetInputError(f"'{path}' row {number} ({','.join(row)}) is not 'frame,speaker,x,y,w,h': "
                                        "write 25 fps frame numbers, 1-based speakers and pixel boxes.") from None
            table.setdefault(speaker, []).append((frame, box))
    return {k: sorted(v) for k, v in table.items()}


class _MaskVideo:
    """A per-frame mask video read forward on the clip's 25 fps clock."""

    def __init__(self, path: str):
        self.frames: Iterator[np.ndarray] = frames_at_fps(path)
        self.index, self.current = -1, None

    def at(self, frame: int) -> Optional[torch.Tensor]:
        while self.index < frame:
            self.current = next(self.frames, None)
            self.index += 1
            if self.current is None:
                return None
        return torch.from_numpy(self.current.mean(-1).astype(np.float32) / 255.0)[None]


class WindowRegions:
    """Speaker layouts per window for one clip (see module doc)."""

    def __init__(self, clip: ClipSource, resolution: str, require_faces: bool, detect: FaceDetector = detect_faces):
        self.clip, self.resolution, self.require_faces, self.detect = clip, resolution, require_faces, detect
        self.static = {k: read_mask_image(p) for k, p in clip.masks.items()}
        self.videos = {k: _MaskVideo(p) for k, p in clip.mask_videos.items()}
        self.boxes = read_box_table(clip.boxes) if clip.boxes else {}

    def _box(self, speaker: int, frame: int) -> Optional[Box]:
        rows = [box for start, box in self.boxes.get(speaker, []) if start <= frame]
        return rows[-1] if rows else None

    def layout(self, frame_index: int, image: np.ndarray, talking: bool) -> tuple[SpeakerLayout, list[Face]]:
        """(layout, faces found in the bucketed frame) for the window starting at `frame_index`
        whose first frame (source size, RGB uint8) is `image`; NoUsableFace when required faces
        are missing."""
        count = self.clip.num_speakers
        masks = [self.videos[k].at(frame_index) if k in self.videos else self.static.get(k)
                 for k in range(1, count + 1)]
        boxes = [None if masks[k - 1] is not None else self._box(k, frame_index) for k in range(1, count + 1)]
        pixels = torch.from_numpy(image).float().div(255.0)[None]
        found: dict[str, list[Face]] = {}

        def detect(frame: np.ndarray) -> list[Face]:
            found.setdefault("faces", self.detect(frame))
            return found["faces"]

        try:
            layout = build_speaker_layout(pixels, count, self.resolution, masks=masks, boxes=boxes, detect=detect)
        except MultiTalkError as exc:
            raise DatasetInputError(f"Clip '{self.clip.name}', frame {frame_index}: {exc}") from None
        faces = detect(np.asarray(layout.image[0].mul(255).round().to(torch.uint8)))
        if talking and self.require_faces:
            self._check_faces(layout, faces, frame_index)
        return layout, faces

    def _check_faces(self, layout: SpeakerLayout, faces: list[Face], frame_index: int) -> None:
        placed_by_user = sum(source in ("mask", "box") for source in layout.sources)
        strips = [i + 1 for i, source in enumerate(layout.sources) if source == "strip"]
        if layout.num_speakers == 1 and not faces and not placed_by_user:
            strips = [1]
        if strips:
            raise NoUsableFace(
                f"no usable face in frame {frame_index} (speaker(s) {', '.join(map(str, strips))} not found by the "
                f"face detector; {len(faces)} face(s) found). Give masks or boxes for such clips, or turn "
                "require_faces off for drawn characters.")
