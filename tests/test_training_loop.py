"""A training loop people can run for days: logs (CSV, TensorBoard), gradient clipping, EMA,
validation on held-out clips, and a resumed run whose log and EMA continue where they stopped."""
from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from comfyui_multitalk.models.dit.keys import is_audio_key
from comfyui_multitalk.models.training import AdapterTrainer, TrainHooks, TrainSettings

sys.path.insert(0, str(Path(__file__).parent))
from training_helpers import synthetic_cache, tiny_training_model  # noqa: E402

BASE = dict(warmup_steps=0, save_every=0, gradient_checkpointing=False, zero_audio_share=0.0,
            continuation_share=0.0, batch_size=2, save_dtype="fp32")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return synthetic_cache(str(tmp_path_factory.mktemp("loop")))


def _model(seed: int = 1):
    return tiny_training_model(seed)


def _rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_log_holds_loss_gradient_norm_and_the_warm_up(cache, tmp_path):
    settings = TrainSettings(steps=5, learning_rate=1e-3, seed=4, **{**BASE, "warmup_steps": 4})
    result = AdapterTrainer(_model(), cache, settings, str(tmp_path / "run")).run()
    rows = _rows(result.log_path)
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5]
    assert [float(r["loss"]) for r in rows] == pytest.approx(result.losses, rel=1e-5)
    assert [float(r["grad_norm"]) for r in rows] == pytest.approx(result.grad_norms, rel=1e-5)
    assert [float(r["lr"]) for r in rows] == pytest.approx([1e-3 * min(1, k / 4) for k in range(1, 6)])
    assert all(r["val_loss"] == "" for r in rows)


def test_gradients_are_clipped_to_max_grad_norm(cache, tmp_path):
    model = _model()
    norms = []

    def after_step(n, message):  # the gradients the optimizer used are still there after the step
        grads = [p.grad for k, p in model.named_parameters() if is_audio_key(k) and p.grad is not None]
        norms.append(float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))))

    settings = TrainSettings(steps=3, learning_rate=1e-3, max_grad_norm=0.01, **BASE)
    result = AdapterTrainer(model, cache, settings, str(tmp_path / "clip"), TrainHooks(progress=after_step)).run()
    assert min(result.grad_norms) > 0.01  # before clipping
    assert norms == pytest.approx([0.01] * 3, rel=1e-4)  # after clipping


def test_ema_of_the_adapter_follows_its_formula(cache, tmp_path):
    model = _model()
    start = {k: v.float().clone() for k, v in model.state_dict().items() if is_audio_key(k)}
    weights = []
    record = lambda n, m: weights.append(  # noqa: E731
        {k: p.detach().clone() for k, p in model.named_parameters() if is_audio_key(k)})
    decay = 0.5
    settings = TrainSettings(steps=3, learning_rate=1e-2, ema_decay=decay, **BASE)
    result = AdapterTrainer(model, cache, settings, str(tmp_path / "ema"), TrainHooks(progress=record)).run()
    saved = load_file(str(tmp_path / "ema_ema.safetensors"))
    assert saved.keys() == start.keys()
    for key in start:
        expected = start[key]
        for step in weights:  # ema <- decay * ema + (1 - decay) * weights, from the starting weights
            expected = decay * expected + (1 - decay) * step[key]
        torch.testing.assert_close(saved[key], expected, rtol=1e-5, atol=1e-7)
    assert not torch.equal(saved[next(iter(start))], load_file(result.adapter_path)[next(iter(start))])


def test_validation_holds_out_whole_clips_and_measures_a_repeatable_loss(tmp_path):
    cache = synthetic_cache(str(tmp_path / "c"), windows=5)
    settings = TrainSettings(steps=4, learning_rate=1e-9, validation_windows=2, validation_every=2, **BASE)
    trainer = AdapterTrainer(_model(), cache, settings, str(tmp_path / "val"))
    held = {w.source for w in trainer.held_out.windows}
    assert len(trainer.held_out.windows) == 2 and held.isdisjoint({w.source for w in trainer.cache.windows})
    result = trainer.run()
    assert [s for s, _ in result.val_losses] == [2, 4]
    (_, first), (_, second) = result.val_losses
    assert first == pytest.approx(second, rel=1e-6)  # fixed noise and flow times: only the adapter moves it
    rows = _rows(result.log_path)
    assert [r["val_loss"] != "" for r in rows] == [False, True, False, True]


def test_a_resumed_run_continues_its_log_and_its_ema(cache, tmp_path):
    settings = TrainSettings(steps=4, learning_rate=1e-2, ema_decay=0.7, seed=2, **{**BASE, "save_every": 2})
    straight = AdapterTrainer(_model(), cache, settings, str(tmp_path / "a")).run()

    def crash_after_step_3(n, message):  # a crash, not a cancel: the last resume state is step 2's
        if message.startswith("step 3/"):
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError, match="power cut"):
        AdapterTrainer(_model(), cache, settings, str(tmp_path / "b"), TrainHooks(progress=crash_after_step_3)).run()
    assert [int(r["step"]) for r in _rows(str(tmp_path / "b.log.csv"))] == [1, 2, 3]
    resumed = AdapterTrainer(_model(), cache, settings, str(tmp_path / "b")).run()
    assert resumed.start_step == 2 and resumed.losses == straight.losses
    assert [int(r["step"]) for r in _rows(resumed.log_path)] == [1, 2, 3, 4]  # step 3 once, from the resumed run
    a, b = load_file(str(tmp_path / "a_ema.safetensors")), load_file(str(tmp_path / "b_ema.safetensors"))
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=0)


def test_tensorboard_gets_the_same_scalars(cache, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    settings = TrainSettings(steps=3, learning_rate=1e-3, tensorboard=True, **BASE)
    result = AdapterTrainer(_model(), cache, settings, str(tmp_path / "tb")).run()
    events = EventAccumulator(str(tmp_path / "tb_tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2, 3]
    assert [e.value for e in events.Scalars("train/loss")] == pytest.approx(result.losses, rel=1e-6)
    assert {"train/grad_norm", "train/lr"} <= set(events.Tags()["scalars"])


def test_preview_clips_are_sampled_decoded_and_written_with_their_sound(tmp_path, tiny_vae):
    from comfyui_multitalk.models.errors import GenerationInputError
    from comfyui_multitalk.models.video_io import probe_video

    cache = synthetic_cache(str(tmp_path / "c"), windows=3)
    settings = TrainSettings(steps=4, learning_rate=1e-3, preview_every=2, preview_steps=2, **BASE)
    with pytest.raises(GenerationInputError, match="no VAE was given"):
        AdapterTrainer(_model(), cache, settings, str(tmp_path / "p"))
    result = AdapterTrainer(_model(), cache, settings, str(tmp_path / "p"), vae=tiny_vae).run()
    assert result.previews == [str(tmp_path / "p_preview_step000002.mp4"), str(tmp_path / "p_preview_step000004.mp4")]
    probe = probe_video(result.previews[-1])
    assert probe.frames == 9 and probe.audio_seconds is not None and abs(probe.audio_seconds - 9 / 25) < 0.05
