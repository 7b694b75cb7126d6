"""Shot cuts: a window must not straddle a cut (its first frame would show another scene than
the rest, and its speaker masks would be wrong). PySceneDetect's content detector finds the
cuts; each shot becomes a separate run of windows on the clip's 25 fps timeline.
"""
from __future__ import annotations

import logging
import math

from ..errors import DatasetInputError

logger = logging.getLogger(__name__)

CUT_THRESHOLD = 27.0  # PySceneDetect's default for ContentDetector (HSV + edge change, 0..255)


def shot_ranges(path: str, fps: float = 25.0, threshold: float = CUT_THRESHOLD) -> list[tuple[int, int]]:
    """[(first frame, end frame)] of every shot on the `fps` timeline (end exclusive, one range
    [0, inf) for a single shot)."""
    from scenedetect import ContentDetector, detect
    from scenedetect.video_stream import VideoOpenFailure

    try:
        scenes = detect(path, ContentDetector(threshold=threshold), backend="pyav")
    except VideoOpenFailure as exc:
        raise DatasetInputError(f"Cannot open the video '{path}' for shot detection ({exc}): re-encode it.") from None
    if len(scenes) <= 1:
        return [(0, math.inf)]
    # A shot starts at the first 25 fps frame whose nearest source frame is in it.
    starts = [round(start.seconds * fps) for start, _ in scenes]
    starts[0] = 0
    ends = starts[1:] + [math.inf]
    logger.info("'%s': %d shots (cuts at frames %s)", path, len(scenes), starts[1:])
    return [(s, e) for s, e in zip(starts, ends) if e > s]
