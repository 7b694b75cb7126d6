"""Drawing training batches from the cache: same-shape groups, side-by-side pairs, zeroed audio,
continuation windows.

Every random choice comes from one torch.Generator, so a seed fixes the whole sequence and a
saved generator state resumes it exactly.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import torch

from ..sampling.conditioning import latent_frames
from .cache import AUDIO_CONTEXT, CONTINUATION_KEYS, TrainingCache, WindowInfo, read_window

Sample = dict[str, torch.Tensor]


@dataclass
class TrainBatch:
    latents: torch.Tensor  # [B, 16, T, h, w] clean normalised latents
    y: torch.Tensor  # [B, 20, T, h, w] I2V condition (first frame, or a continuation's known frames)
    audio: torch.Tensor  # [B, S, F, 5, L, C] per-frame wav2vec windows
    context: list[torch.Tensor]  # B x [Lt, D] caption embeddings
    clip: torch.Tensor  # [B, 257, Dc]
    masks: torch.Tensor  # [B, S+1, h, w]
    active: list[int]  # per item: S, or 1 for zeroed audio (the one-speaker no-audio path)
    known_slots: list[int] = field(default_factory=list)  # per item: leading latent slots the sampler
    # overwrites in a continuation window (left out of the loss); empty: none
    clean_slots: list[int] = field(default_factory=list)  # per item: leading slots fed clean (InfiniteTalk)

    def __len__(self) -> int:
        return self.latents.shape[0]


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


@dataclass(frozen=True)
class SampleTask:
    """How one sample is trained: zeroed audio, and which condition variant (None: first frame)."""

    zero_audio: bool = False
    continuation: Optional[str] = None  # "multitalk" | "infinitetalk"
    motion_frames: int = 0


def apply_task(sample: Sample, task: SampleTask) -> Sample:
    """Swap in the continuation's condition (y and CLIP) when the task is a continuation."""
    if task.continuation is None:
        return sample
    y_key, clip_key = CONTINUATION_KEYS[task.continuation]
    return {**sample, "y": sample[y_key], "clip": sample[clip_key]}


def collate(samples: list[Sample], tasks: list[SampleTask], text_len: int) -> TrainBatch:
    audio = []
    for sample, task in zip(samples, tasks):
        windows = audio_windows(sample["audio"])
        audio.append(torch.zeros_like(windows) if task.zero_audio else windows)
    samples = [apply_task(s, t) for s, t in zip(samples, tasks)]
    speakers = samples[0]["audio"].shape[0]
    known = [latent_frames(t.motion_frames) if t.continuation else 0 for t in tasks]
    return TrainBatch(
        latents=torch.stack([s["latents"] for s in samples]),
        y=torch.stack([s["y"] for s in samples]),
        audio=torch.stack(audio),
        context=[s["text"][:text_len] for s in samples],  # the official tokenizer stops at text_len too
        clip=torch.stack([s["clip"] for s in samples]),
        masks=torch.stack([s["masks"] for s in samples]),
        active=[1 if t.zero_audio else speakers for t in tasks],
        known_slots=known,
        clean_slots=[k if t.continuation == "infinitetalk" else 0 for k, t in zip(known, tasks)],
    )


@dataclass
class TaskMix:
    """Shares of the training tasks (see docs/training.md)."""

    zero_audio_share: float = 0.1  # micro-batches trained as image-to-video with zero audio
    compose_share: float = 0.0  # one-speaker batches joined side by side into two-speaker samples
    continuation_share: float = 0.0  # samples trained as continuation windows
    continuation_mode: str = "multitalk"  # the long-video mode the adapter will sample with


class BatchPlanner:
    """Draws batches: a window uniformly at random, then the rest of the batch from its group.

    Per micro-batch: image-to-video (zero audio; windows of speechless clips when the cache has
    them) with probability zero_audio_share, else talking windows. Per sample: a continuation
    with probability continuation_share (windows that hold that variant)."""

    def __init__(self, cache: TrainingCache, batch_size: int, zero_audio_share: float, compose_share: float,
                 text_len: int, generator: torch.Generator,
                 loader: Callable[[WindowInfo], Sample] = read_window, mix: Optional[TaskMix] = None):
        self.cache, self.batch_size, self.text_len = cache, batch_size, text_len
        self.mix = mix or TaskMix(zero_audio_share, compose_share)
        self.generator, self.loader = generator, loader
        talk = [i for i, info in enumerate(cache.windows) if info.task != "i2v"]
        silent = [i for i, info in enumerate(cache.windows) if info.task == "i2v"]
        self.pools = {"talk": self._groups(talk or silent), "i2v": self._groups(silent or talk)}

    def _groups(self, members: list[int]) -> tuple[list[int], dict[tuple, list[int]]]:
        groups: dict[tuple, list[int]] = {}
        for index in members:
            groups.setdefault(self.cache.windows[index].group, []).append(index)
        return members, groups

    def _uniform(self) -> float:
        return float(torch.rand((), generator=self.generator))

    def _pick(self, members: list[int], count: int) -> list[int]:
        """`count` members, without repeats until the group is used up."""
        picks: list[int] = []
        while len(picks) < count:
            order = torch.randperm(len(members), generator=self.generator).tolist()
            picks += [members[i] for i in order[: count - len(picks)]]
        return picks

    def _task(self, info: WindowInfo, zero_audio: bool) -> SampleTask:
        mix = self.mix
        frames = info.motion_frames(mix.continuation_mode)
        continuation = mix.continuation_share > 0 and self._uniform() < mix.continuation_share and frames > 0
        return SampleTask(zero_audio or info.task == "i2v", mix.continuation_mode if continuation else None,
                          frames if continuation else 0)

    def next_batch(self, part: slice = slice(None)) -> TrainBatch:
        """The next batch; `part` keeps only those samples (one process's share) while every draw is
        made for the whole batch, so each process follows the same sequence."""
        zero_audio = self.mix.zero_audio_share > 0 and self._uniform() < self.mix.zero_audio_share
        members, groups = self.pools["i2v" if zero_audio else "talk"]
        first = members[int(torch.randint(len(members), (), generator=self.generator))]
        info = self.cache.windows[first]
        group = groups[info.group]
        pairable = info.speakers == 1 and len(group) >= 2 and info.task != "i2v"
        if pairable and self.mix.compose_share > 0 and self._uniform() < self.mix.compose_share:
            picks = self._pick(group, 2 * self.batch_size)
            tasks = [SampleTask(zero_audio) for _ in range(self.batch_size)]
            pairs = list(zip(picks[0::2], picks[1::2]))[part]
            samples = [compose_pair(self.loader(self.cache.windows[a]), self.loader(self.cache.windows[b]))
                       for a, b in pairs]
            return collate(samples, tasks[part], self.text_len)
        picks = [first] + self._pick([m for m in group if m != first] or [first], self.batch_size - 1)
        tasks = [self._task(self.cache.windows[i], zero_audio) for i in picks]
        samples = [self.loader(self.cache.windows[i]) for i in picks[part]]
        return collate(samples, tasks[part], self.text_len)
