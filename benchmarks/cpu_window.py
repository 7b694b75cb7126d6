"""One sampler window on a CPU, for bench_options.py's step-cache rows: the given DiT, random
prompt / CLIP / audio inputs, and a VAE that only pools and repeats pixels, so the seconds are the
sampling loop's (DiT calls and the cache's own work)."""
from __future__ import annotations

import time
from typing import Optional

import torch

from comfyui_multitalk.models.sampling.generate import GenerationInputs, SamplerSettings, VideoGenerator
from comfyui_multitalk.models.sampling.step_cache import StepCacheSettings


class PoolVAE:
    """[F, H, W, 3] -> [1, 16, 1 + (F-1)/4, H/8, W/8] by 8x8 pooling; back by repeating."""

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        x = torch.nn.functional.avg_pool3d(frames.permute(3, 0, 1, 2)[None], (1, 8, 8))
        return torch.cat([x[:, :, :1], x[:, :, 1::4]], dim=2).repeat(1, 6, 1, 1, 1)[:, :16] - 0.5

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        x = latent[0, :3].repeat_interleave(8, -1).repeat_interleave(8, -2)
        return torch.cat([x[:, :1], x[:, 1:].repeat_interleave(4, dim=1)], dim=1).permute(1, 2, 3, 0) + 0.5


def window_inputs(text_dim: int, height: int, width: int, frames: int, seed: int = 0) -> GenerationInputs:
    g = torch.Generator().manual_seed(seed)
    return GenerationInputs(positive=torch.randn(12, text_dim, generator=g), negative=torch.randn(8, text_dim, generator=g),
                            reference=torch.rand(height, width, 3, generator=g),
                            clip_features=torch.randn(1, 257, 1280, generator=g),
                            audio_features=[torch.randn(frames, 12, 768, generator=g)],
                            masks=torch.ones(2, height // 8, width // 8))


def run_window(model, inputs: GenerationInputs, steps: int, frames: int,
               cache: Optional[StepCacheSettings]) -> tuple[float, torch.Tensor, str]:
    """(seconds, frames, the cache's note) of one window with 3-pass guidance."""
    settings = SamplerSettings(steps=steps, shift=5.0, seed=3, mode="single", window=frames, cache=cache)
    generator = VideoGenerator(model, PoolVAE(), inputs, settings)
    start = time.perf_counter()
    result = generator.run()
    seconds = time.perf_counter() - start
    return seconds, result.frames, result.notes[-1] if cache is not None else ""
