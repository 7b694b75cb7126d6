"""Cancel and progress over the whole run: VAE chunks and CLIP encodings are counted and checked
for Cancel one chunk at a time, previews get the denoised window at every step, and a cancelled
streamed run leaves no file behind."""
from __future__ import annotations

import os

import pytest
import torch

from comfyui_multitalk.models.sampling.generate import GenerationInputs, Hooks, SamplerSettings, VideoGenerator
from comfyui_multitalk.models.sampling.work import chunk_module, count_work
from comfyui_multitalk.models.video_io import Mp4Writer
from comfyui_multitalk.nodes import comfy_bridge
from comfyui_multitalk.nodes.sampler_nodes import MultiTalkSampler

H, W = 32, 48


class Stop(Exception):
    pass


def inputs(frames: int) -> GenerationInputs:
    g = torch.Generator().manual_seed(1)
    return GenerationInputs(positive=torch.randn(5, 16, generator=g), negative=torch.randn(3, 16, generator=g),
                            reference=torch.rand(H, W, 3, generator=g),
                            clip_features=torch.randn(1, 257, 1280, generator=g),
                            audio_features=[torch.randn(frames, 12, 768, generator=g)], masks=torch.ones(2, 4, 6))


def counting(module: torch.nn.Module) -> list:
    calls = []
    module.register_forward_hook(lambda *_: calls.append(1))
    return calls


class Log:
    """progress + check_interrupt that raise Stop at the first check after `stop_on` shows up."""

    def __init__(self, stop_on: str = ""):
        self.messages, self.stop_on, self.steps = [], stop_on, []

    def progress(self, n: int, message: str) -> None:
        self.messages += [message] * n

    def check(self) -> None:
        if self.stop_on and any(self.stop_on in m for m in self.messages):
            raise Stop(self.stop_on)


def run(tiny_dit, tiny_vae, settings, frames=17, clip_encoder=None, stop_on=""):
    log = Log(stop_on)
    hooks = Hooks(progress=log.progress, check_interrupt=log.check, clip_encoder=clip_encoder,
                  on_step=lambda latent, window, step: log.steps.append((tuple(latent.shape), window, step)))
    generator = VideoGenerator(tiny_dit, tiny_vae, inputs(frames), settings, hooks)
    return generator, log


@pytest.mark.parametrize("mode", ["multitalk", "infinitetalk"])
def test_progress_counts_steps_vae_chunks_and_clip_exactly(tiny_dit, tiny_vae, mode):
    settings = SamplerSettings(steps=2, mode=mode, window=9, motion_frames=5, seed=2)
    clip = lambda frame: torch.zeros(1, 257, 1280)  # noqa: E731
    generator, log = run(tiny_dit, tiny_vae, settings, clip_encoder=clip)
    encoder_calls = counting(chunk_module(tiny_vae, "encode"))
    decoder_calls = counting(chunk_module(tiny_vae, "decode"))
    generator.run()
    units = count_work(generator.plan, 2, has_clip_encoder=True)
    assert len(log.messages) == generator.total_units == units.total
    assert sum("encoding" in m or "decoding" in m for m in log.messages) == units.vae
    # every chunk the VAE ran was reported by itself (not lumped at the end of the call)
    assert sum("encoding" in m for m in log.messages) == len(encoder_calls)
    assert sum("decoding" in m for m in log.messages) == len(decoder_calls) == 3 * 3  # 3 windows x 3 latents
    assert sum("CLIP" in m for m in log.messages) == units.clip == (2 if mode == "multitalk" else 0)
    assert log.messages[-1] == "window 3/3, decoding"
    # every step offers the window's denoised estimate (for ComfyUI's latent preview)
    assert log.steps == [((1, 16, 3, H // 8, W // 8), w, s) for w in range(3) for s in range(2)]


@pytest.mark.parametrize("op", ["decoding", "encoding"])
def test_cancel_stops_after_one_vae_chunk(tiny_dit, tiny_vae, op):
    settings = SamplerSettings(steps=1, mode="multitalk", window=9, motion_frames=5, seed=2)
    generator, log = run(tiny_dit, tiny_vae, settings, stop_on=op)
    module = chunk_module(tiny_vae, "decode" if op == "decoding" else "encode")
    calls = counting(module)
    with pytest.raises(Stop):
        generator.run()
    assert len(calls) == 1  # the first chunk, then Cancel: the other chunks never ran


def test_cancel_is_checked_around_clip_and_between_unbatched_passes(tiny_dit, tiny_vae):
    settings = SamplerSettings(steps=1, mode="multitalk", window=9, motion_frames=5, seed=2, batch_guidance=False)
    encoded = []
    generator, log = run(tiny_dit, tiny_vae, settings, clip_encoder=lambda f: encoded.append(f) or
                         torch.zeros(1, 257, 1280), stop_on="CLIP")
    model_calls = counting(tiny_dit)
    with pytest.raises(Stop):
        generator.run()
    assert len(encoded) == 1 and len(model_calls) == 3  # window 1's three passes; none of window 2's

    class StopAfterOnePass:
        def __init__(self):
            self.calls = model_calls

        def __call__(self):
            if len(model_calls) == 4:
                raise Stop("pass")

    model_calls.clear()
    generator = VideoGenerator(tiny_dit, tiny_vae, inputs(17), settings, Hooks(check_interrupt=StopAfterOnePass()))
    with pytest.raises(Stop):
        generator.run()
    assert len(model_calls) == 4  # window 1's three passes and one of window 2's, then Cancel


class FakeAudio:
    fps = 25.0

    def mixed_between(self, start: int, end: int) -> dict:
        return {"waveform": torch.zeros(1, 1, (end - start) * 640), "sample_rate": 16000}


def test_cancelled_stream_leaves_no_file(tiny_dit, tiny_vae, tmp_path, monkeypatch):
    aborted, original_abort = [], Mp4Writer.abort
    monkeypatch.setattr(Mp4Writer, "abort", lambda self: aborted.append(self) or original_abort(self))
    written = []

    def write_then_cancel(self, frames):
        self.writer.write(frames)
        written.append(frames.shape[0])
        comfy_bridge.request_interrupt()  # Cancel pressed while window 2 runs

    from comfyui_multitalk.nodes.sampler_nodes import StreamSink

    monkeypatch.setattr(StreamSink, "write", write_then_cancel)
    target = tmp_path / "talk.mp4"
    settings = SamplerSettings(steps=1, mode="multitalk", window=9, motion_frames=5, seed=2)
    try:
        with pytest.raises(KeyboardInterrupt):
            MultiTalkSampler._run(tiny_dit, tiny_vae, inputs(17), settings, FakeAudio(), None, str(target))
    finally:
        comfy_bridge.clear_interrupt()
    assert written == [9] and len(aborted) == 1  # one window was on disk when Cancel came
    assert os.listdir(tmp_path) == []  # neither the video nor its temporary file
