"""Time of speaker placement on the sample photo: bucketing, boxes, automatic detection, preview.

CPU, 2 threads. Detection needs OpenCV's Haar cascades (opencv-python-headless 4.x); without
them the "auto" rows time the strip fallback and say so.

Usage: python benchmarks/bench_speakers.py [--image ../shared/samples/two_speakers.jpg] [--repeat 3]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from comfyui_multitalk.models.speakers import (Box, build_speaker_layout, detector_unavailable_reason,
                                               render_preview)

DEFAULT_IMAGE = Path(__file__).resolve().parents[1].parent / "shared" / "samples" / "two_speakers.jpg"


def _best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(2)
    pixels = np.asarray(Image.open(args.image).convert("RGB"))
    image = torch.from_numpy(pixels.astype(np.float32) / 255.0)[None]
    boxes = [Box(0.1, 0.0, 0.35, 1.0), Box(0.55, 0.1, 0.3, 0.9)]
    print(f"image {pixels.shape[1]}x{pixels.shape[0]}; detector: {detector_unavailable_reason() or 'OpenCV Haar'}")
    for resolution in ("480p", "720p"):
        layout = build_speaker_layout(image, 2, resolution, boxes=boxes)
        rows = {
            "boxes": lambda: build_speaker_layout(image, 2, resolution, boxes=boxes),
            "auto": lambda: build_speaker_layout(image, 2, resolution),
            "preview": lambda: render_preview(layout.image, layout.masks),
            "latent+token masks": lambda: layout.token_masks(),
        }
        for name, fn in rows.items():
            print(f"{resolution} {layout.width}x{layout.height} {name:>20}: {_best_of(args.repeat, fn) * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
