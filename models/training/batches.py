"""Drawing training batches from the cache: same-shape groups, side-by-side pairs, zeroed audio.

Every random choice comes from one torch.Generator, so a seed fixes the whole sequence and a
saved generator state resumes it exactly.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .cache import AUDIO_CONTEXT, TrainingCache, WindowInfo, read_window

Sample = dict[str, torch.Tensor]


@dataclass
class TrainBatch:
    latents: torch.Tensor  # [B, 16, T, h, w] clean normalised latents
    y: torch.Tensor  # [B, 20, T, h, w] I2V condition
    audio: torch.Tensor  # [B, S, F, 5, L, C] per-frame wav2vec windows
    context: list[torch.Tensor]  # B x [Lt, D] caption embeddings
    clip: torch.Tensor  # [B, 257, Dc]
    masks: torch.Tensor  # [B, S+1, h, w]
    active: list[int]  # per item: S, or 1 for zeroed audio (the one-speaker no-audio path)


def compose_pair(left: Sample, right: Sample) -> Sample:
    """Two one-speaker windows side by side: one two-speaker window twice as wide.

    Latents and conditions are joined along the width (the VAE is local enough that this is
    close to encoding the joined frames); speaker 1 owns the left half, speaker 2 the right;
    captions are joined; CLIP features are the left clip's (CLIP sees one whole image)."""
    width = left["latents"].shape[-1]
    height, total = left["masks"].shape[-2], width + right["latents"].shape[-1]
    masks = torch.zeros(3, height, total)  # speaker 1, speaker 2, background (none)
    masks[0, :, :width], masks[1, :, width:] = 1, 1
    return {
        "latents": torch.cat([left["latents"], right["latents"]], dim=-1),
        "y": torch.cat([left["y"], right["y"]], dim=-1),
        "audio": torch.cat([left["audio"][:1], right["audio"][:1]], dim=0),  # [2, F + 4, L, C]
        "text": torch.cat([left["text"], right["text"]], dim=0),
        "clip": left["clip"],
        "masks": masks,
    }


def audio_windows(audio: torch.Tensor) -> torch.Tensor:
    """[S, F + 4, L, C] with context -> [S, F, 5, L, C]: frame i sees frames i-2..i+2."""
    return audio.unfold(1, 2 * AUDIO_CONTEXT + 1, 1).permute(0, 1, 4, 2, 3)


def collate(samples: list[Sample], zero_audio: list[bool], text_len: int) -> TrainBatch:
    audio = []
    for sample, zero in zip(samples, zero_audio):
        windows = audio_windows(sample["audio"])
        audio.append(torch.zeros_like(windows) if zero else windows)
    speakers = samples[0]["audio"].shape[0]
    return TrainBatch(
        latents=torch.stack([s["latents"] for s in samples]),
        y=torch.stack([s["y"] for s in samples]),
        audio=torch.stack(audio),
        context=[s["text"][:text_len] for s in samples],  # the official tokenizer stops at text_len too
        clip=torch.stack([s["clip"] for s in samples]),
        masks=torch.stack([s["masks"] for s in samples]),
        active=[1 if zero else speakers for zero in zero_audio],
    )


class BatchPlanner:
    """Draws batches: a window uniformly at random, then the rest of the batch from its group."""

    def __init__(self, cache: TrainingCache, batch_size: int, zero_audio_share: float, compose_share: float,
                 text_len: int, generator: torch.Generator,
                 loader: Callable[[WindowInfo], Sample] = read_window):
        self.cache, self.batch_size, self.text_len = cache, batch_size, text_len
        self.zero_audio_share, self.compose_share = zero_audio_share, compose_share
        self.generator, self.loader = generator, loader
        self.groups: dict[tuple, list[int]] = {}
        for index, info in enumerate(cache.windows):
            self.groups.setdefault(info.group, []).append(index)

    def _uniform(self) -> float:
        return float(torch.rand((), generator=self.generator))

    def _pick(self, members: list[int], count: int) -> list[int]:
        """`count` members, without repeats until the group is used up."""
        picks: list[int] = []
        while len(picks) < count:
            order = torch.randperm(len(members), generator=self.generator).tolist()
            picks += [members[i] for i in order[: count - len(picks)]]
        return picks

    def next_batch(self) -> TrainBatch:
        first = int(torch.randint(len(self.cache), (), generator=self.generator))
        members = self.groups[self.cache.windows[first].group]
        pairable = self.cache.windows[first].speakers == 1 and len(members) >= 2
        compose = pairable and self.compose_share > 0 and self._uniform() < self.compose_share
        if compose:
            picks = self._pick(members, 2 * self.batch_size)
            loaded = [self.loader(self.cache.windows[i]) for i in picks]
            samples = [compose_pair(a, b) for a, b in zip(loaded[0::2], loaded[1::2])]
        else:
            picks = [first] + self._pick([m for m in members if m != first] or [first], self.batch_size - 1)
            samples = [self.loader(self.cache.windows[i]) for i in picks]
        zero = [self._uniform() < self.zero_audio_share for _ in samples]
        return collate(samples, zero, self.text_len)
