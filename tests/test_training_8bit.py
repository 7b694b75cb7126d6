"""bitsandbytes' 8-bit AdamW in the trainer (the optimizer that lets the 14B step fit 80 GB), run
on the CPU: its moments are stored in 8 bits, its first step is Adam's, and a resumed run
continues exactly from the saved 8-bit state."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from comfyui_multitalk.models.dit.keys import is_audio_key
from comfyui_multitalk.models.training import AdapterTrainer, TrainHooks, TrainSettings

pytest.importorskip("bitsandbytes")

sys.path.insert(0, str(Path(__file__).parent))
from training_helpers import synthetic_cache, tiny_training_model  # noqa: E402

BASE = dict(warmup_steps=0, gradient_checkpointing=False, zero_audio_share=0.0, continuation_share=0.0,
            batch_size=2, save_dtype="fp32", optimizer="adamw8bit", weight_decay=0.0)
LR = 1e-3


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return synthetic_cache(str(tmp_path_factory.mktemp("bnb")))


def _model(seed: int = 1):
    return tiny_training_model(seed)


def _adapter(model) -> dict[str, torch.Tensor]:
    return {k: p.detach().clone() for k, p in model.named_parameters() if is_audio_key(k)}


def test_first_step_is_adams(cache, tmp_path):
    """Adam's first bias-corrected step is lr * g / (|g| + eps): lr * sign(g) wherever |g| >> eps."""
    model, seen = _model(), {}
    before = _adapter(model)

    def after_step(n, message):  # the gradients the optimizer used and the weights it wrote (the
        # model is handed back unchanged after the run)
        seen["grads"] = {k: p.grad.clone() for k, p in model.named_parameters()
                         if is_audio_key(k) and p.grad is not None}
        seen["after"] = _adapter(model)

    settings = TrainSettings(steps=1, learning_rate=LR, save_every=0, seed=3, **BASE)
    AdapterTrainer(model, cache, settings, str(tmp_path / "one"), TrainHooks(progress=after_step)).run()
    moved = checked = 0
    for key, grad in seen["grads"].items():
        step = before[key] - seen["after"][key]
        strong = grad.abs() > 1e-5  # far above eps (1e-8), so the step is lr * sign(g)
        torch.testing.assert_close(step[strong], LR * grad[strong].sign(), rtol=0.05, atol=LR * 0.05)
        moved += int((step != 0).sum())
        checked += int(strong.sum())
    assert checked > 10_000 and moved >= checked


def test_large_adapter_tensors_keep_their_moments_in_8_bits(cache, tmp_path):
    import bitsandbytes as bnb

    captured = {}
    real_step = bnb.optim.AdamW8bit.step

    def spy(self, *args, **kwargs):
        out = real_step(self, *args, **kwargs)
        captured["dtypes"] = [(p.numel(), self.state[p]["state1"].dtype) for group in self.param_groups
                              for p in group["params"] if p in self.state]
        return out

    bnb.optim.AdamW8bit.step = spy
    try:
        AdapterTrainer(_model(), cache, TrainSettings(steps=1, learning_rate=LR, save_every=0, **BASE),
                       str(tmp_path / "spy")).run()
    finally:
        bnb.optim.AdamW8bit.step = real_step
    big = [dtype for numel, dtype in captured["dtypes"] if numel >= 4096]  # bitsandbytes' min_8bit_size
    assert big and all(dtype == torch.uint8 for dtype in big)


def test_a_resumed_run_continues_exactly_from_the_8_bit_state(cache, tmp_path):
    settings = TrainSettings(steps=4, learning_rate=LR, save_every=2, seed=2, **BASE)
    straight = AdapterTrainer(_model(), cache, settings, str(tmp_path / "a")).run()

    def crash_after_step_3(n, message):
        if message.startswith("step 3/"):
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError, match="power cut"):
        AdapterTrainer(_model(), cache, settings, str(tmp_path / "b"), TrainHooks(progress=crash_after_step_3)).run()
    resumed = AdapterTrainer(_model(), cache, settings, str(tmp_path / "b")).run()
    assert resumed.start_step == 2 and resumed.losses == straight.losses
    a, b = load_file(straight.adapter_path), load_file(resumed.adapter_path)
    assert a.keys() == b.keys() and a
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=0)
