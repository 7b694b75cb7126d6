"""Synthetic inputs for the demo: a drawn two-person picture, their masks and two voices.

No files are downloaded: the picture is drawn with OpenCV and the voices are harmonic
buzzes shaped into syllables, taking turns like a short dialogue.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

WIDTH, HEIGHT = 384, 256
SAMPLE_RATE = 16000
# (centre x, shirt colour BGR, hair colour BGR) of the left and right person
PEOPLE = ((0.28, (60, 90, 200), (30, 40, 60)), (0.72, (170, 120, 40), (20, 20, 20)))


@dataclass(frozen=True)
class DemoMedia:
    reference: str  # RGB PNG
    speaker_masks: tuple[str, ...]  # RGBA PNGs: the reference, transparent over speaker k (ComfyUI's painted mask)
    voices: tuple[str, ...]  # 16 kHz mono WAVs, speaker 1 then speaker 2
    seconds: float


def draw_two_people(width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """An RGB uint8 picture [H, W, 3] of two simple people side by side."""
    import cv2

    rows = np.linspace(0, 1, height)[:, None, None]
    top, bottom = np.array([235, 225, 200]), np.array([150, 160, 175])  # BGR wall gradient
    image = np.ascontiguousarray(np.broadcast_to(top + (bottom - top) * rows, (height, width, 3)).astype(np.uint8))
    for centre, shirt, hair in PEOPLE:
        cx, head_y, head_r = int(centre * width), int(0.38 * height), int(0.13 * height)
        body = np.array([[cx - 2.2 * head_r, height], [cx - 1.4 * head_r, head_y + 1.5 * head_r],
                         [cx + 1.4 * head_r, head_y + 1.5 * head_r], [cx + 2.2 * head_r, height]], np.int32)
        cv2.fillPoly(image, [body], shirt, lineType=cv2.LINE_AA)
        cv2.rectangle(image, (cx - head_r // 3, head_y + head_r - 4), (cx + head_r // 3, head_y + int(1.6 * head_r)),
                      (150, 180, 225), -1)  # neck
        cv2.ellipse(image, (cx, head_y - head_r // 4), (head_r + 4, head_r), 0, 180, 360, hair, -1, cv2.LINE_AA)
        cv2.ellipse(image, (cx, head_y), (int(0.85 * head_r), head_r), 0, 0, 360, (160, 190, 235), -1, cv2.LINE_AA)
        for side in (-1, 1):
            cv2.circle(image, (cx + side * head_r // 3, head_y - head_r // 6), 3, (40, 30, 30), -1, cv2.LINE_AA)
        cv2.ellipse(image, (cx, head_y + head_r // 2), (head_r // 3, head_r // 8), 0, 0, 360, (80, 80, 170), -1,
                    cv2.LINE_AA)
    return image[:, :, ::-1].copy()  # BGR -> RGB


def face_boxes(width: int = WIDTH, height: int = HEIGHT) -> list[tuple[float, float, float, float]]:
    """(x, y, w, h) of each drawn head (hair to chin), left to right: AnyTalker's faces."""
    boxes = []
    for centre, _, _ in PEOPLE:
        cx, head_y, head_r = int(centre * width), int(0.38 * height), int(0.13 * height)
        boxes.append((cx - head_r, head_y - 1.3 * head_r, 2 * head_r, 2.3 * head_r))
    return boxes


def person_region(index: int, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """bool [H, W]: the half-body box of person `index` (head to the bottom edge)."""
    region = np.zeros((height, width), bool)
    cx, half = int(PEOPLE[index][0] * width), int(0.36 * height)
    region[int(0.18 * height):, max(cx - half, 0):cx + half] = True
    return region


def voice(seconds: float, pitch: float, active: list[tuple[float, float]], seed: int) -> np.ndarray:
    """float32 [T] speech-like sound: harmonics of a wavering pitch, chopped into syllables
    (about 4 per second) inside the `active` (start, end) spans, silent elsewhere."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    f0 = pitch * (1 + 0.08 * np.sin(2 * np.pi * 1.3 * t) + 0.03 * np.sin(2 * np.pi * 5.1 * t))
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    buzz = sum(np.sin(k * phase + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 12))
    syllables = np.abs(np.sin(2 * np.pi * rng.uniform(3.5, 4.5) * t)) ** 0.6
    gate = np.zeros_like(t)
    for start, end in active:
        gate[(t >= start) & (t < end)] = 1.0
    kernel = np.hanning(int(0.02 * SAMPLE_RATE))
    gate = np.convolve(gate, kernel / kernel.sum(), mode="same")  # 20 ms fades: no clicks
    sound = buzz * syllables * gate + 0.003 * rng.standard_normal(t.shape)
    return (0.3 * sound / np.abs(sound).max()).astype(np.float32)


def write_demo_media(folder: str, seconds: float = 2.4) -> DemoMedia:
    """Write the picture, the two painted-mask PNGs and the two voices (turn-taking) into `folder`."""
    import soundfile
    from PIL import Image

    os.makedirs(folder, exist_ok=True)
    picture = draw_two_people()
    reference = os.path.join(folder, "two_people.png")
    Image.fromarray(picture).save(reference)
    masks = []
    for k in range(2):
        alpha = np.where(person_region(k), 0, 255).astype(np.uint8)  # painted = transparent, as ComfyUI saves it
        path = os.path.join(folder, f"two_people_speaker{k + 1}.png")
        Image.fromarray(np.dstack([picture, alpha]), "RGBA").save(path)
        masks.append(path)
    half = seconds / 2
    turns = (([(0.1, half - 0.1)], 120.0), ([(half + 0.1, seconds - 0.1)], 210.0))
    voices = []
    for k, (active, pitch) in enumerate(turns):
        path = os.path.join(folder, f"speaker{k + 1}.wav")
        soundfile.write(path, voice(seconds, pitch, active, seed=k), SAMPLE_RATE)
        voices.append(path)
    return DemoMedia(reference, tuple(masks), tuple(voices), seconds)
