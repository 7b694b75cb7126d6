"""Fixtures of the dubbing tests: synthetic frames that carry their own index, and a recorder
around the tiny DiT."""
from __future__ import annotations

import pytest
import torch

BITS = 8


def coded_frames(count: int, height: int = 96, width: int = 128, offset: int = 0) -> torch.Tensor:
    """IMAGE [count, H, W, 3]: frame i shows i + offset as 8 vertical bars (white = 1, bit 0 on
    the left) over dark grey, readable after lossy coding and any resize that keeps the bars."""
    frames = torch.full((count, height, width, 3), 0.25)
    bar = width // BITS
    for i in range(count):
        for bit in range(BITS):
            if ((i + offset) >> bit) & 1:
                frames[i, :, bit * bar:(bit + 1) * bar] = 1.0
    return frames


def read_codes(frames: torch.Tensor) -> list[int]:
    """The index each frame [F, H, W, 3] (0..1 or uint8) shows, from the centres of its bars."""
    frames = frames.float() / (255.0 if frames.dtype == torch.uint8 else 1.0)
    row = frames[:, frames.shape[1] // 2].mean(-1)  # [F, W]
    centres = [int((bit + 0.5) * frames.shape[2] / BITS) for bit in range(BITS)]
    return [sum(int(row[f, c] > 0.6) << bit for bit, c in enumerate(centres)) for f in range(frames.shape[0])]


class Codes:
    frames = staticmethod(coded_frames)
    read = staticmethod(read_codes)


@pytest.fixture(scope="session")
def codes() -> Codes:
    return Codes()


class Recorder:
    """Wraps the DiT: records each call's latent, text context, CLIP features and y."""

    def __init__(self, model):
        self.model, self.calls = model, []
        self.compute_dtype = model.compute_dtype

    def parameters(self):
        return self.model.parameters()

    def __call__(self, x, t, context, clip, y, **kwargs):
        self.calls.append(dict(x=x.clone(), t=t.clone(), context=[c.clone() for c in context], clip=clip.clone(),
                               y=y.clone(), masks=kwargs["ref_masks"].clone()))
        return self.model(x, t, context, clip, y, **kwargs)


@pytest.fixture
def recorder(tiny_dit) -> Recorder:
    return Recorder(tiny_dit)
