"""Small stand-ins for sampler tests that are about the steps, not the VAE: a VAE that pools and
repeats pixels (milliseconds), the inputs of one tiny window, and a model wrapper that sees each
guidance pass of a step alone (the sampler batches them; this runs them one by one)."""
from __future__ import annotations

from typing import Callable, Optional

import torch

from comfyui_multitalk.models.sampling.generate import GenerationInputs

H, W, WINDOW = 32, 48, 9
PASSES_3 = ("cond", "no_text", "uncond")
PASSES_2 = ("cond", "no_audio")


class StubVAE:
    """[F, H, W, 3] -> [1, 16, 1 + (F-1)/4, H/8, W/8] by pooling; the way back by repeating."""

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        x = torch.nn.functional.avg_pool3d(frames.permute(3, 0, 1, 2)[None], (1, 8, 8))
        x = torch.cat([x[:, :, :1], x[:, :, 1::4]], dim=2)
        return x.repeat(1, 6, 1, 1, 1)[:, :16] - 0.5

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        x = latent[0, :3].repeat_interleave(8, -1).repeat_interleave(8, -2)
        x = torch.cat([x[:, :1], x[:, 1:].repeat_interleave(4, dim=1)], dim=1)
        return x.permute(1, 2, 3, 0) + 0.5


def tiny_inputs(speakers: int = 1, seed: int = 0, frames: int = 20) -> GenerationInputs:
    g = torch.Generator().manual_seed(seed)
    masks = torch.ones(2, H // 8, W // 8)
    if speakers == 2:
        masks = torch.zeros(3, H // 8, W // 8)
        masks[0, :, :3], masks[1, :, 3:] = 1, 1
    return GenerationInputs(positive=torch.randn(5, 16, generator=g), negative=torch.randn(4, 16, generator=g),
                            reference=torch.rand(H, W, 3, generator=g),
                            clip_features=torch.randn(1, 257, 1280, generator=g),
                            audio_features=[torch.randn(frames, 12, 768, generator=g) for _ in range(speakers)],
                            masks=masks)


class PerPassModel:
    """Wraps the DiT for an uncached sampler run: every call is one step with all its passes (in
    `passes` order); `item(name, step, x, t, run)` returns each pass's velocity, where `run(residual)`
    calls the DiT on that pass alone and returns (velocity, the blocks' residual). With a residual
    given, the blocks' output is replaced by their input plus it (forward hooks on the first and last
    block: the sampler's own shortcut is not used)."""

    def __init__(self, model, passes: tuple[str, ...], item: Callable):
        self.model, self.passes, self.item, self.step = model, passes, item, -1
        self.compute_dtype = model.compute_dtype

    def parameters(self):
        return self.model.parameters()

    def __call__(self, x, t, context, clip, y, audio=None, ref_masks=None, routing="lrope", active_speakers=None):
        assert x.shape[0] == len(self.passes), "the reference expects every pass at every step"
        self.step += 1
        outs = []
        for j, name in enumerate(self.passes):
            def run(residual: Optional[torch.Tensor] = None, j: int = j):
                return self._blocks_hooked(residual, x[j:j + 1], t[j:j + 1], [context[j]], clip, y,
                                           audio=audio[j:j + 1], ref_masks=ref_masks, routing=routing,
                                           active_speakers=[active_speakers[j]])
            outs.append(self.item(name, self.step, x[j:j + 1], t[j:j + 1], run))
        return torch.cat(outs)

    def _blocks_hooked(self, residual, *args, **kwargs):
        seen = {}

        def before(module, inputs):
            seen["in"] = inputs[0]

        def after(module, inputs, output):
            seen["out"] = output
            return None if residual is None else seen["in"] + residual

        hooks = [self.model.blocks[0].register_forward_pre_hook(before),
                 self.model.blocks[-1].register_forward_hook(after)]
        try:
            out = self.model(*args, **kwargs)
        finally:
            for hook in hooks:
                hook.remove()
        return out, seen["out"] - seen["in"]
