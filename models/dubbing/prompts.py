"""Prompt timeline (MULTITALK_PROMPTS): prompts with start times, each encoded once.

A window takes the prompt active at its first frame ("window_start"), or ("blend") the mean of
the prompts' embeddings weighted by how many of the frames it adds fall under each; the
embeddings are zero-padded to the longest first, as the DiT pads each context itself.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from ..errors import DubbingInputError
from .timing import start_frame

SWITCH_MODES = ("window_start", "blend")


@dataclass
class PromptTimeline:
    starts: list[int]  # first timeline frame of each entry (the first is 0)
    prompts: list[int]  # entry -> index into embeddings
    embeddings: list[torch.Tensor]  # one [L, D] per distinct prompt
    texts: list[str]  # one per distinct prompt (labels when pre-encoded)
    switch: str = "window_start"

    def active(self, frame: int) -> int:
        """Index (into embeddings) of the prompt active at timeline frame `frame`."""
        entry = max(i for i, start in enumerate(self.starts) if start <= max(frame, 0))
        return self.prompts[entry]

    def weights(self, first: int, end: int) -> dict[int, float]:
        """Share of frames first..end-1 under each prompt (index -> weight)."""
        counts: dict[int, int] = {}
        for frame in range(first, max(end, first + 1)):
            counts[self.active(frame)] = counts.get(self.active(frame), 0) + 1
        total = sum(counts.values())
        return {index: count / total for index, count in counts.items()}

    def for_window(self, start: int, new_from: int, end: int) -> tuple[torch.Tensor, dict[int, float]]:
        """The text embedding [L, D] of a window starting at `start` that adds frames
        new_from..end-1, and the weights it was made of."""
        if self.switch == "window_start":
            index = self.active(start)
            return self.embeddings[index], {index: 1.0}
        weights = self.weights(new_from, end)
        if len(weights) == 1:
            (index,) = weights
            return self.embeddings[index], weights
        length = max(self.embeddings[i].shape[0] for i in weights)
        mixed = sum(w * _pad(self.embeddings[i].float(), length) for i, w in weights.items())
        return mixed, weights


def _pad(embedding: torch.Tensor, length: int) -> torch.Tensor:
    return torch.nn.functional.pad(embedding, (0, 0, 0, length - embedding.shape[0]))


def build_prompt_timeline(entries: Sequence[tuple[float, str]], switch: str,
                          encode: Callable[[str], torch.Tensor] | None = None,
                          encoded: Sequence[torch.Tensor] = (), fps: float = 25.0) -> PromptTimeline:
    """Entries (seconds, text) -> PromptTimeline. With `encode` (text -> [L, D]) each distinct
    text is encoded once; else entry k takes encoded[k] (pre-encoded conditionings, in order)."""
    if switch not in SWITCH_MODES:
        raise DubbingInputError(f"Unknown prompt switch '{switch}': choose one of {', '.join(SWITCH_MODES)}.")
    starts = [start_frame(seconds, fps) for seconds, _ in entries]
    for (seconds, _), before, after in zip(entries[1:], starts, starts[1:]):
        if after <= before:
            raise DubbingInputError(f"Prompt entry at {seconds} s falls on the same 25 fps frame as the one before: "
                                    "space the entries at least 0.04 s apart.")
    if encode is not None:
        texts = list(dict.fromkeys(text for _, text in entries))
        if "" in texts:
            raise DubbingInputError("A prompt timeline entry has no text: write 'seconds: prompt' for each entry.")
        embeddings = [encode(text) for text in texts]
        return PromptTimeline(starts, [texts.index(text) for _, text in entries], embeddings, texts, switch)
    if len(encoded) != len(entries):
        raise DubbingInputError(f"The prompt timeline has {len(entries)} entries but {len(encoded)} conditionings "
                                "are connected: connect the text encoder (t5), or one conditioning_k per entry.")
    labels = [text or f"conditioning_{k + 1}" for k, (_, text) in enumerate(entries)]
    return PromptTimeline(starts, list(range(len(entries))), [e.float() for e in encoded], labels, switch)
