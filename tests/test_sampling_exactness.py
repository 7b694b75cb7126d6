"""One window of the sampler against an independent implementation of DESIGN §4's formulas,
written here from the method's definition: shifted linspace timesteps, the I2V condition, the
3-pass / 2-pass guidance (and APG), the Euler flow update, the latent normalisation."""
from __future__ import annotations

import inspect
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKLWan

from comfyui_multitalk.models.sampling.generate import GenerationInputs, SamplerSettings, VideoGenerator
from comfyui_multitalk.models.sampling.schedule import flow_timesteps

sys.path.insert(0, str(Path(__file__).parent))
from sampling_stubs import H, W, WINDOW, tiny_inputs  # noqa: E402

STEPS = 3


def _latent_stats():
    params = inspect.signature(AutoencoderKLWan.__init__).parameters
    mean = torch.tensor(params["latents_mean"].default).view(1, 16, 1, 1, 1)
    std = torch.tensor(params["latents_std"].default).view(1, 16, 1, 1, 1)
    return mean, std


class ReferenceAPG:
    def __init__(self, momentum=-0.75, threshold=55.0):
        self.momentum, self.threshold, self.avg = momentum, threshold, {}

    def __call__(self, key, diff, cond):
        self.avg[key] = diff + self.momentum * self.avg.get(key, 0.0)
        diff = self.avg[key]
        norm = torch.sqrt((diff.double() ** 2).sum()).float()
        diff = diff * min(1.0, self.threshold / float(norm))
        unit = cond.double() / torch.sqrt((cond.double() ** 2).sum())
        return (diff.double() - (diff.double() * unit).sum() * unit).float()


def reference_window(model, vae, inp: GenerationInputs, s: SamplerSettings) -> torch.Tensor:
    raw_t = list(np.linspace(1000, 1, s.steps, dtype=np.float32)) + [0.0]
    ts = [s.shift * (t / 1000) / (1 + (s.shift - 1) * (t / 1000)) * 1000 for t in raw_t]
    mean, std = _latent_stats()
    pixels = torch.cat([inp.reference[None], torch.full((s.window - 1, H, W, 3), 0.5)])
    latent = (vae.encode(pixels) - mean) / std
    T, h, w = latent.shape[2:]
    mask = torch.zeros(s.window, h, w)
    mask[0] = 1
    mask = torch.cat([mask[:1].repeat(4, 1, 1), mask[1:]]).view(T, 4, h, w).transpose(0, 1)[None]
    y = torch.cat([mask, latent], dim=1)
    frames = inp.audio_features[0].shape[0]
    idx = (torch.arange(s.window)[:, None] + torch.arange(-2, 3)[None]).clamp(0, frames - 1)
    audio = torch.stack([f[idx] for f in inp.audio_features])[None]
    silent = torch.zeros_like(audio[:, :1])
    x = torch.randn(1, 16, T, h, w, generator=torch.Generator().manual_seed(s.seed))
    apg = ReferenceAPG() if s.apg else None
    call = lambda text, a: model(x, torch.tensor([ts[i]]), [text], inp.clip_features, y, audio=a,  # noqa: E731
                                 ref_masks=inp.masks, routing=s.routing)
    for i in range(s.steps):
        cond = call(inp.positive, audio)
        if s.text_scale == 1.0:
            no_audio = call(inp.positive, silent)
            v = (cond + (s.audio_scale - 1) * apg("a", cond - no_audio, cond) if apg
                 else no_audio + s.audio_scale * (cond - no_audio))
        else:
            no_text, uncond = call(inp.negative, audio), call(inp.negative, silent)
            v = (cond + (s.text_scale - 1) * apg("t", cond - no_text, cond)
                 + (s.audio_scale - 1) * apg("a", no_text - uncond, cond)) if apg else \
                uncond + s.text_scale * (cond - no_text) + s.audio_scale * (no_text - uncond)
        x = x - v * (ts[i] - ts[i + 1]) / 1000
    return vae.decode(x * std + mean).reshape(-1, H, W, 3).clamp(0, 1)


CASES = {
    "one_speaker_3pass": (1, dict()),
    "two_speakers_3pass": (2, dict()),
    "two_speakers_2pass": (2, dict(text_scale=1.0, audio_scale=3.0)),
    "two_speakers_apg": (2, dict(apg=True, text_scale=4.0, audio_scale=2.5)),
    "masked_routing": (2, dict(routing="masked")),
    "separate_passes": (2, dict(batch_guidance=False)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_one_window_matches_independent_formulas(tiny_dit, tiny_vae, case):
    speakers, overrides = CASES[case]
    settings = SamplerSettings(steps=STEPS, shift=5.0, seed=7, mode="single", window=WINDOW, **overrides)
    inp = tiny_inputs(speakers)
    with torch.no_grad():
        expected = reference_window(tiny_dit, tiny_vae, inp, settings)
        got = VideoGenerator(tiny_dit, tiny_vae, inp, settings).run()
    assert got.frames.shape == (WINDOW, H, W, 3) and got.frame_count == WINDOW
    assert (got.frames - expected).abs().max().item() < 1e-4


def test_same_seed_same_frames_other_seed_other_frames(tiny_dit, tiny_vae):
    inp = tiny_inputs(2)
    run = lambda seed: VideoGenerator(tiny_dit, tiny_vae, inp, SamplerSettings(  # noqa: E731
        steps=2, seed=seed, mode="single", window=WINDOW)).run().frames
    first = run(3)
    assert torch.equal(first, run(3))
    assert not torch.allclose(first, run(4))


def test_schedule_values():
    ts = flow_timesteps(4, 7.0)
    unit = torch.tensor([1000.0, 667.0, 334.0, 1.0]) / 1000
    assert torch.allclose(ts[:-1], 7 * unit / (1 + 6 * unit) * 1000, atol=1e-3)
    assert ts[-1] == 0 and ts[0] == pytest.approx(1000.0)
