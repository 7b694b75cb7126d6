"""Automatic speaker placement: OpenCV Haar face detection, expanded to upper-body regions.

Detectors: OpenCV's frontal (default and alt2) and profile cascades, each run on the image
and on its mirror (the profile cascade only knows one facing direction; the mirror finds
the other, and three-quarter views are caught by one of the four). Nothing is downloaded:
the cascades are the XML files that the opencv-python wheels ship in `cv2.data.haarcascades`
(OpenCV 4.x; the 5.x wheels ship no cascades, in which case automatic placement reports
that and the caller falls back to strips).

Rules (documented in docs/speakers.md):
- detections that overlap (one's centre inside the other) are one face; its box is the
  neighbour-weighted mean of the detections and its score their summed neighbour counts;
- faces scoring below MIN_FACE_SCORE are dropped (single weak hits are mostly texture);
- the N most prominent faces (score x face width) are used, ordered left to right;
- each face becomes an upper-body region: BODY_WIDTH face widths wide around the face
  centre, from BODY_ABOVE face heights above the face box to BODY_BELOW face heights below
  its top, clipped to the image.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Optional

import numpy as np
import torch

CASCADE_FILES = (
    "haarcascade_frontalface_default.xml",
    "haarcascade_frontalface_alt2.xml",
    "haarcascade_profileface.xml",
)
DETECT_MAX_SIDE = 768      # detection runs on a copy at most this large (faces here are big)
MIN_FACE_FRACTION = 0.04   # smallest face side, as a fraction of the shorter image side
MIN_NEIGHBORS = 3
MIN_FACE_SCORE = 8
BODY_WIDTH = 4.0
BODY_ABOVE = 0.5
BODY_BELOW = 7.0


@dataclass(frozen=True)
class Face:
    """A detected face: top-left corner, size (pixels) and summed detector neighbours."""

    x: float
    y: float
    w: float
    h: float
    score: float

    @property
    def center(self) -> tuple[float, float]:
        return self.x + self.w / 2, self.y + self.h / 2

    def contains(self, point: tuple[float, float]) -> bool:
        return self.x <= point[0] <= self.x + self.w and self.y <= point[1] <= self.y + self.h


@lru_cache(maxsize=1)
def _cascades() -> tuple[tuple, Optional[str]]:
    """Loaded cascade classifiers, or () and the reason they are unavailable."""
    import cv2

    folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
    if not hasattr(cv2, "CascadeClassifier") or not folder:
        return (), f"this OpenCV ({cv2.__version__}) has no Haar cascade face detector"
    loaded = []
    for name in CASCADE_FILES:
        path = os.path.join(folder, name)
        classifier = cv2.CascadeClassifier(path) if os.path.isfile(path) else None
        if classifier is not None and not classifier.empty():
            loaded.append(classifier)
    if not loaded:
        return (), f"this OpenCV ({cv2.__version__}) ships no face cascades in {folder}"
    return tuple(loaded), None


def detector_unavailable_reason() -> Optional[str]:
    """None when automatic face detection works here, else why not (for notes and skips)."""
    return _cascades()[1]


def _raw_detections(pixels: np.ndarray) -> list[Face]:
    """Every cascade on the image and its mirror; boxes in `pixels` coordinates."""
    import cv2

    height, width = pixels.shape[:2]
    scale = min(1.0, DETECT_MAX_SIDE / max(height, width))
    small = cv2.resize(pixels, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
    gray = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY))
    side = max(24, int(MIN_FACE_FRACTION * min(gray.shape)))
    found: list[Face] = []
    for classifier in _cascades()[0]:
        for mirrored in (False, True):
            view = cv2.flip(gray, 1) if mirrored else gray
            rects, neighbours = classifier.detectMultiScale2(
                view, scaleFactor=1.1, minNeighbors=MIN_NEIGHBORS, minSize=(side, side)
            )
            for (x, y, w, h), n in zip(rects, neighbours):
                x = gray.shape[1] - x - w if mirrored else x
                found.append(Face(x / scale, y / scale, w / scale, h / scale, float(n)))
    return found


def _merge(detections: list[Face]) -> list[Face]:
    """Group detections of the same face; weighted-mean box, summed score."""
    groups: list[list[Face]] = []
    for face in sorted(detections, key=lambda f: -f.score):
        for group in groups:
            anchor = group[0]
            if anchor.contains(face.center) or face.contains(anchor.center):
                group.append(face)
                break
        else:
            groups.append([face])
    merged = []
    for group in groups:
        weights = np.array([max(f.score, 1.0) for f in group])
        boxes = np.array([[f.x, f.y, f.w, f.h] for f in group])
        x, y, w, h = (boxes * weights[:, None]).sum(axis=0) / weights.sum()
        merged.append(Face(float(x), float(y), float(w), float(h), float(sum(f.score for f in group))))
    return merged


def detect_faces(pixels: np.ndarray) -> list[Face]:
    """Faces in an RGB uint8 image [H,W,3], merged and filtered, most prominent first.

    Returns [] when no face is found or the detector is unavailable (see
    detector_unavailable_reason()).
    """
    if detector_unavailable_reason() is not None:
        return []
    faces = [f for f in _merge(_raw_detections(pixels)) if f.score >= MIN_FACE_SCORE]
    return sorted(faces, key=lambda f: -f.score * f.w)


def body_region(face: Face, height: int, width: int) -> torch.Tensor:
    """0/1 mask [H,W] of the upper-body region that belongs to a face."""
    cx = face.x + face.w / 2
    x0 = max(0, int(round(cx - BODY_WIDTH * face.w / 2)))
    x1 = min(width, int(round(cx + BODY_WIDTH * face.w / 2)))
    y0 = max(0, int(round(face.y - BODY_ABOVE * face.h)))
    y1 = min(height, int(round(face.y + BODY_BELOW * face.h)))
    mask = torch.zeros(height, width)
    mask[y0:y1, x0:x1] = 1.0
    return mask
