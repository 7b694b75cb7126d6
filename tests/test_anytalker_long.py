"""AnyTalker long video in the pack's windowed loop (our extension; the official has one pass).

A tiny random AnyTalker behind a recorder, and a VAE stand-in whose latent is each latent frame's
pixels pooled 8x8 (so what is carried between windows can be followed exactly): the windows'
frame counts, the audio each window sees, and the motion frames carried over in both modes.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from comfyui_multitalk.models.anytalker import load_anytalker
from comfyui_multitalk.models.anytalker.pipeline import Identities
from comfyui_multitalk.models.anytalker.sampling import AnyTalkerGenerator
from comfyui_multitalk.models.anytalker.tiny import random_anytalker_state_dict, tiny_anytalker_config
from comfyui_multitalk.models.sampling.generate import GenerationInputs, Hooks
from comfyui_multitalk.models.sampling.settings import SamplerSettings

FRAMES, WINDOW, MOTION = 33, 13, 5  # 33 frames of audio in 13-frame windows, 5 carried over
HEIGHT, WIDTH = 64, 96


class PoolVae:
    """Latent frame j = pixel frame 4j (0 for j = 0) in [-1, 1], pooled 8x8, its RGB repeated over 16
    channels; decoding repeats each latent frame over the 4 pixel frames it covers."""

    def __init__(self):
        self.encoded, self.decoded = [], []

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:  # [F, H, W, 3] 0..1 -> raw [1, 16, T, h, w]
        self.encoded.append(pixels.clone())
        picked = pixels[::4].permute(0, 3, 1, 2) * 2 - 1  # [T, 3, H, W]
        pooled = F.avg_pool2d(picked, 8)  # [T, 3, h, w]
        return pooled.repeat(1, 6, 1, 1)[:, :16].permute(1, 0, 2, 3)[None]

    def decode(self, raw: torch.Tensor) -> torch.Tensor:  # [1, 16, T, h, w] -> [1, F, H, W, 3]
        self.decoded.append(raw.clone())
        frames = F.interpolate(raw[0, :3].permute(1, 0, 2, 3), scale_factor=8, mode="nearest")  # [T, 3, H, W]
        frames = torch.cat([frames[:1], frames[1:].repeat_interleave(4, dim=0)])
        return ((frames + 1) / 2).permute(0, 2, 3, 1)[None]


class Recorder(torch.nn.Module):
    """The model, recording every call's latent, timestep and audio."""

    def __init__(self, model):
        super().__init__()
        self.inner, self.calls = model, []

    @property
    def compute_dtype(self) -> torch.dtype:
        return self.inner.compute_dtype

    def forward(self, x, t, context, clip_fea, y, audio=None, faces=None, face_masks=None):
        self.calls.append({"x": x.clone(), "audio": audio.clone(), "y": y.clone()})
        return self.inner(x, t, context, clip_fea, y, audio=audio, faces=faces, face_masks=face_masks)


@pytest.fixture(scope="module")
def model():
    config = tiny_anytalker_config(text_dim=16, clip_dim=64, audio_layers=2, audio_hidden=8)
    return load_anytalker(random_anytalker_state_dict(config, seed=5), dtype="fp32")


def _run(model, mode: str, motion: int = MOTION):
    g = torch.Generator().manual_seed(1)
    regions = torch.zeros(HEIGHT, WIDTH)
    regions[8:40, 10:40], regions[8:40, 56:86] = 1.0, 1.0
    who = Identities(faces=torch.randn(2, 257, 64, generator=g), face_masks=torch.rand(2, 4, 6, generator=g),
                     face_regions=regions)
    features = [torch.randn(FRAMES, 5, 2, 8, generator=g).to(torch.bfloat16) for _ in range(2)]
    inputs = GenerationInputs(positive=torch.randn(5, 16, generator=g), negative=torch.randn(3, 16, generator=g),
                              reference=torch.rand(HEIGHT, WIDTH, 3, generator=g),
                              clip_features=torch.randn(1, 257, 64, generator=g), audio_features=features,
                              masks=who.face_masks)
    settings = SamplerSettings(steps=2, shift=3.0, text_scale=4.5, solver="unipc", mode=mode, window=WINDOW,
                               motion_frames=motion, colour_strength=0.0)
    chunks, clip_frames = [], []
    hooks = Hooks(on_frames=chunks.append,
                  clip_encoder=lambda frame: (clip_frames.append(frame.clone()), inputs.clip_features)[1])
    recorder, vae = Recorder(model), PoolVae()
    generator = AnyTalkerGenerator(recorder, vae, inputs, who, settings, hooks)
    result = generator.run()
    return dict(result=result, chunks=chunks, calls=recorder.calls, vae=vae, features=features,
                clip_frames=clip_frames, generator=generator)


@pytest.fixture(scope="module")
def chained(model):
    return _run(model, "multitalk")


@pytest.fixture(scope="module")
def anchored(model):
    return _run(model, "infinitetalk")


@pytest.mark.parametrize("run", ["chained", "anchored"])
def test_windows_cover_the_audio_exactly(run, request):
    out = request.getfixturevalue(run)
    # windows start every 13 - 5 = 8 frames: 0, 8, 16, 24; the first keeps 13 frames, the others their
    # frames after the 5 carried in, the last only up to frame 33
    assert [w.start for w in out["result"].plan.windows] == [0, 8, 16, 24]
    assert [c.shape[0] for c in out["chunks"]] == [13, 8, 8, 4]
    assert out["result"].frame_count == FRAMES and out["result"].frames is None  # streamed to on_frames
    assert len(out["calls"]) == 4 * 2  # 4 windows x 2 steps, both guidance passes in one batch


def test_each_window_hears_its_own_audio(chained):
    features = torch.stack(chained["features"])  # [2, 33, 5, 2, 8]
    for k, start in enumerate([0, 8, 16, 24]):
        audio = chained["calls"][2 * k]["audio"]  # [2 passes, 2 speakers, 13, 5, 2, 8]
        assert not audio[1].any()  # the uncond pass: silence for everyone
        end = min(start + WINDOW, FRAMES)
        assert torch.equal(audio[0][:, :end - start], features[:, start:end].float())
    tail = chained["calls"][6]["audio"][0][:, FRAMES - 24:]  # frames 33..36: the audio mirrored backwards
    assert torch.equal(tail, features[:, [32, 31, 30, 29]].float())


def test_chained_windows_continue_from_the_last_frames(chained):
    vae, chunks = chained["vae"], chained["chunks"]
    assert len(vae.encoded) == 4  # the reference, then each window's known frames
    output = torch.cat(chunks)
    for k in range(1, 4):
        known = vae.encoded[k]  # [13, H, W, 3]: the 5 last frames of window k-1, then mid-grey
        start = 8 * k
        assert torch.allclose(known[:MOTION], output[start:start + MOTION], atol=1e-6)
        assert torch.equal(known[MOTION:], torch.full_like(known[MOTION:], 0.5))
        assert torch.allclose(chained["clip_frames"][k - 1][0], output[start + MOTION - 1], atol=1e-6)
        y = chained["calls"][2 * k]["y"][0]  # the mask channels mark the carried frames as known
        assert torch.equal(y[:4, :2], torch.ones_like(y[:4, :2])) and y[:4, 2:].min() == 0  # then the faces
        # the carried latents end the window exactly where they were put (re-noised to t = 0)
        encoded = vae.encoded[k][::4].permute(0, 3, 1, 2) * 2 - 1
        assert torch.allclose(vae.decoded[k][0, :3, :2], F.avg_pool2d(encoded[:2], 8).permute(1, 0, 2, 3), atol=1e-5)


def test_anchored_windows_write_the_last_frames_as_clean_latents(anchored):
    vae, calls = anchored["vae"], anchored["calls"]
    output = torch.cat(anchored["chunks"])
    assert len(vae.encoded) == 1 + 3  # the reference once (cached), then the 5 frames carried into each window
    for k in range(1, 4):
        carried = vae.encoded[k]
        assert carried.shape[0] == MOTION and torch.allclose(carried, output[8 * k:8 * k + MOTION], atol=1e-6)
        slots = calls[2 * k]["x"][:, :, :2]  # 5 frames = 2 latent frames, clean at every step
        assert torch.allclose(slots, calls[2 * k + 1]["x"][:, :, :2])
        assert torch.equal(calls[2 * k]["y"], calls[0]["y"])  # re-anchored: the reference's condition
    assert not anchored["clip_frames"]  # anchored windows keep the reference's CLIP features
