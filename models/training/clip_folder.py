"""Finding the training clips in a folder and the files that belong to each.

Naming, for a clip `talk.mp4`:
- audio per speaker: `talk.speaker1.wav`, `talk.speaker2.wav`, ... (any audio format); with no
  such file the video's own soundtrack is speaker 1;
- caption: `talk.txt` (missing: an empty caption, with a note);
- masks (optional, two or more speakers): `talk.mask1.png`, `talk.mask2.png`, ... white where
  that speaker is, at the video's size (other sizes are stretched, with a note); or per frame:
  `talk.mask1.mp4`, ... (a mask video on the clip's clock); or boxes per frame in `talk.boxes.csv`
  (rows `frame,speaker,x,y,w,h`, 25 fps frame numbers, the box from that frame on);
- two speakers in one mixed track: the mix (`talk.mix.wav`, or the video's own sound) plus
  `talk.rttm`, a who-speaks-when file in the standard RTTM format (speakers in name order are
  speakers 1, 2, ...).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Optional

from ..errors import DatasetInputError
from .rttm import read_rttm

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".m4a", ".ogg", ".aac", ".opus")
MASK_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
MASK_VIDEO = re.compile(r"\.mask\d+$", re.IGNORECASE)


@dataclass
class ClipSource:
    """One clip's files. speaker_audio: per speaker in order (None: use the video's soundtrack)."""

    name: str
    video: str
    speaker_audio: Optional[list[str]]
    caption: Optional[str]
    masks: dict[int, str] = field(default_factory=dict)  # speaker number (1-based) -> mask file
    mask_videos: dict[int, str] = field(default_factory=dict)  # speaker number -> per-frame mask video
    boxes: Optional[str] = None  # per-frame boxes (csv)
    rttm: Optional[str] = None  # who speaks when in `mix` (or the video's sound)
    mix: Optional[str] = None  # one mixed track of every speaker
    rttm_speakers: int = 0  # speakers named in the rttm file

    @property
    def num_speakers(self) -> int:
        if self.rttm:
            return self.rttm_speakers
        return len(self.speaker_audio) if self.speaker_audio else 1


def _numbered(files: list[str], stem: str, kind: str, extensions: tuple[str, ...]) -> dict[int, str]:
    pattern = re.compile(re.escape(stem) + r"\." + kind + r"(\d+)(\.[^.]+)$", re.IGNORECASE)
    found = {}
    for name in files:
        match = pattern.match(name)
        if match and match.group(2).lower() in extensions:
            found[int(match.group(1))] = name
    return found


def describe_clip(folder: str, video_name: str, files: list[str]) -> ClipSource:
    """The files of one clip; DatasetInputError when its speaker files have gaps."""
    stem = os.path.splitext(video_name)[0]
    audio = _numbered(files, stem, "speaker", AUDIO_EXTENSIONS)
    masks = _numbered(files, stem, "mask", MASK_EXTENSIONS)
    if audio:
        missing = [k for k in range(1, max(audio) + 1) if k not in audio]
        if missing:
            raise DatasetInputError(
                f"Clip '{video_name}': no audio for speaker {missing[0]} (expected '{stem}.speaker{missing[0]}.wav'; "
                f"found speakers {sorted(audio)}). Add the file or renumber the speakers from 1.")
    mask_videos = _numbered(files, stem, "mask", VIDEO_EXTENSIONS)
    rttm = stem + ".rttm" if stem + ".rttm" in files else None
    if rttm and audio:
        raise DatasetInputError(f"Clip '{video_name}' has both '{rttm}' and per-speaker audio files: give either one "
                                "track per speaker or one mixed track with its RTTM file, not both.")
    rttm_speakers = len(read_rttm(os.path.join(folder, rttm))) if rttm else 0
    speakers = rttm_speakers or (max(audio) if audio else 1)
    extra = [k for k in list(masks) + list(mask_videos) if k > speakers]
    if extra:
        raise DatasetInputError(
            f"Clip '{video_name}': '{masks.get(extra[0]) or mask_videos[extra[0]]}' is a mask for speaker {extra[0]} "
            f"but there is no audio for that speaker (expected '{stem}.speaker{extra[0]}.wav'). Add the audio or "
            "remove the mask.")
    mix = next((stem + ".mix" + ext for ext in AUDIO_EXTENSIONS if stem + ".mix" + ext in files), None)
    caption = stem + ".txt"
    return ClipSource(
        name=stem,
        video=os.path.join(folder, video_name),
        speaker_audio=[os.path.join(folder, audio[k]) for k in sorted(audio)] if audio else None,
        caption=os.path.join(folder, caption) if caption in files else None,
        masks={k: os.path.join(folder, v) for k, v in masks.items()},
        mask_videos={k: os.path.join(folder, v) for k, v in mask_videos.items()},
        boxes=os.path.join(folder, stem + ".boxes.csv") if stem + ".boxes.csv" in files else None,
        rttm=os.path.join(folder, rttm) if rttm else None,
        mix=os.path.join(folder, mix) if mix else None,
        rttm_speakers=rttm_speakers,
    )


def find_clips(folder: str) -> tuple[list[ClipSource], list[tuple[str, str]]]:
    """(clips in name order, [(video file, why it was skipped)]) of a clips folder."""
    folder = os.path.expanduser(str(folder).strip())
    if not folder or not os.path.isdir(folder):
        raise DatasetInputError(f"The clips folder '{folder}' does not exist: give the folder holding the "
                                "video clips (with their .speakerN audio and .txt captions).")
    files = sorted(os.listdir(folder))
    videos = [f for f in files if os.path.splitext(f)[1].lower() in VIDEO_EXTENSIONS
              and not MASK_VIDEO.search(os.path.splitext(f)[0])]  # a clip's per-frame masks are no clip
    if not videos:
        raise DatasetInputError(f"The clips folder '{folder}' holds no video ({', '.join(VIDEO_EXTENSIONS)}).")
    clips, skipped = [], []
    for video in videos:
        try:
            clips.append(describe_clip(folder, video, files))
        except DatasetInputError as exc:
            skipped.append((video, str(exc)))
    return clips, skipped
