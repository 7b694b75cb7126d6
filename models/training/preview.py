"""A preview clip while training: one window sampled with the adapter as it is, decoded, with its
own sound, so lip sync can be watched as it improves.

The window is the first held-out one (else the first training window), conditioned on its first
frame as the first window of a video is. Sampling is the sampler's Euler flow steps with the
conditional pass only (no guidance: a third of the cost, enough to see the trend); the speakers'
sound stored in the cache is mixed into the video.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..sampling.conditioning import decode_latent
from ..sampling.solvers import make_solver
from .batches import SampleTask, collate
from .cache import WindowInfo, read_window

PREVIEW_SEED = 7


@torch.no_grad()
def render_preview(model: torch.nn.Module, vae: Any, window: WindowInfo, steps: int, shift: float, autocast: bool,
                   path: str, write: bool = True) -> str:
    """Sample `window` with `model`, decode it with `vae` and write an mp4 to `path` (under torchrun
    every process samples, as the sharded model's forward is collective; only `write` ones decode)."""
    from ..video_io import write_mp4

    sample = read_window(window)
    batch = collate([sample], [SampleTask(zero_audio=window.task == "i2v")], model.config.text_len)
    device = model.patch_embedding.weight.device
    solver = make_solver("euler", steps, shift)
    latent = torch.randn(batch.latents.shape, generator=torch.Generator().manual_seed(PREVIEW_SEED)).to(device)
    inputs = dict(context=[c.to(device) for c in batch.context], clip_fea=batch.clip.to(device), y=batch.y.to(device),
                  audio=batch.audio.to(device), ref_masks=batch.masks.to(device), routing="lrope",
                  active_speakers=batch.active)
    for index in range(steps):
        t = solver.timesteps[index].reshape(1).to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            velocity = model(latent, t, **inputs)
        latent = solver.step(latent, velocity.float(), index)
    if not write:
        return path
    frames = decode_latent(vae, latent.float().cpu())
    return write_mp4(path, frames, 25.0, _soundtrack(sample))


def _soundtrack(sample: dict) -> Any:
    """The speakers' stored sound mixed to one track (None when the cache holds none)."""
    speech = sample.get("speech")
    if speech is None or not speech.numel():
        return None
    mix = speech.float().sum(0) / 32767  # stored as int16 PCM
    peak = float(mix.abs().max())
    mix = mix / peak if peak > 1 else mix
    return {"waveform": mix.reshape(1, 1, -1), "sample_rate": 16000}


def preview_path(adapter: str, step: int) -> str:
    return adapter[: -len(".safetensors")] + f"_preview_step{step:06d}.mp4"


def speech_samples(tracks: list[np.ndarray], start: int, frames: int) -> torch.Tensor:
    """[S, frames * 640] int16: each speaker's 16 kHz sound under a window (for previews)."""
    out = np.zeros((len(tracks), frames * 640), dtype=np.float32)
    for row, track in enumerate(tracks):
        piece = track[start * 640:(start + frames) * 640]
        out[row, :piece.size] = piece
    return torch.from_numpy(np.round(np.clip(out, -1, 1) * 32767).astype(np.int16))
