"""The training objective is the one the sampler integrates, checked against formulas written here:
x_t = (1 - s) x0 + s noise at timestep 1000 s, target noise - x0, s = k u / (1 + (k - 1) u);
the backbone stays frozen, checkpointed blocks are recomputed, and the loss falls at the paper's
learning rate."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

from comfyui_multitalk.models.dit.keys import is_audio_key
from comfyui_multitalk.models.errors import GenerationInputError
from comfyui_multitalk.models.sampling.solvers import make_solver
from comfyui_multitalk.models.training import (AdapterTrainer, FlowDraw, TrainHooks, TrainSettings, draw_flow,
                                               flow_matching_loss, load_cache, noised_latents, velocity_target)
from comfyui_multitalk.models.training.batches import BatchPlanner, TaskMix
from comfyui_multitalk.models.training.cache import read_window
from comfyui_multitalk.models.training.tiny import write_synthetic_cache

sys.path.insert(0, str(Path(__file__).parent))
from training_helpers import synthetic_cache, tiny_training_model  # noqa: E402

QUICK = dict(warmup_steps=0, save_every=0, gradient_checkpointing=False, zero_audio_share=0.0, continuation_share=0.0)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return synthetic_cache(str(tmp_path_factory.mktemp("objective")))


def _model(seed: int = 1):
    return tiny_training_model(seed)


def _batch(cache, size=2, seed=0):
    return BatchPlanner(cache, size, 0.0, 0.0, 32, torch.Generator().manual_seed(seed)).next_batch()


def test_the_model_sees_the_interpolation_at_sigma_and_the_loss_is_against_noise_minus_x0(cache):
    model = _model()
    batch = _batch(cache)
    x0 = batch.latents
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(3))
    sigma = torch.tensor([0.2, 0.85])
    seen = {}
    model.register_forward_pre_hook(lambda m, args, kwargs: seen.update(x=args[0], t=args[1]), with_kwargs=True)
    model.register_forward_hook(lambda m, args, output: seen.update(v=output))
    loss = flow_matching_loss(model, batch, FlowDraw(sigma, noise), autocast=False)

    s = sigma.view(2, 1, 1, 1, 1)
    torch.testing.assert_close(seen["x"], (1 - s) * x0 + s * noise, rtol=0, atol=1e-6)
    torch.testing.assert_close(seen["t"], torch.tensor([200.0, 850.0]))
    expected = ((seen["v"] - (noise - x0)) ** 2).mean()
    torch.testing.assert_close(loss, expected, rtol=1e-6, atol=0)


def test_one_euler_step_along_the_target_recovers_x0(cache):
    x0 = _batch(cache).latents
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(4))
    for s in (0.05, 0.5, 0.97):
        sigma = torch.full((x0.shape[0],), s)
        # The sampler's update x <- x - v (t_i - t_{i+1}) / 1000 from t_i = 1000 s to t_{i+1} = 0.
        stepped = noised_latents(x0, noise, sigma) - velocity_target(x0, noise) * s
        torch.testing.assert_close(stepped, x0, rtol=0, atol=1e-5)
    # The sampler's own Euler solver, one step from pure noise (t = 1000) to t = 0.
    solver = make_solver("euler", 1, 5.0)
    start = noised_latents(x0, noise, torch.ones(x0.shape[0]))
    torch.testing.assert_close(solver.step(start, velocity_target(x0, noise), 0), x0, rtol=0, atol=1e-5)


def test_continuation_windows_train_what_long_video_sampling_runs(cache):
    """MultiTalk continuations: the known frames' condition, known latent slots out of the loss.
    InfiniteTalk: the reference's condition and clean motion latents in the first slots."""
    from safetensors.torch import load_file

    files = {info.path: load_file(info.path) for info in cache.windows}
    for mode, y_key, clean in (("multitalk", "y_motion", False), ("infinitetalk", "y_ref", True)):
        mix = TaskMix(0.0, 0.0, 1.0, mode)
        seen_paths = []

        def loader(info, seen_paths=seen_paths):
            seen_paths.append(info.path)
            return {k: v.float() for k, v in files[info.path].items()}

        batch = BatchPlanner(cache, 2, 0.0, 0.0, 32, torch.Generator().manual_seed(1), loader=loader,
                             mix=mix).next_batch()
        assert batch.known_slots == [2, 2] and batch.clean_slots == ([2, 2] if clean else [0, 0])  # 5 frames
        for item, path in enumerate(seen_paths):
            assert torch.equal(batch.y[item], files[path][y_key].float())
        model = _model()
        seen = {}
        model.register_forward_pre_hook(lambda m, args, kwargs: seen.update(x=args[0]), with_kwargs=True)
        model.register_forward_hook(lambda m, args, output: seen.update(v=output))
        x0 = batch.latents
        noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(2))
        sigma = torch.tensor([0.3, 0.7])
        loss = flow_matching_loss(model, batch, FlowDraw(sigma, noise), autocast=False)
        s = sigma.view(2, 1, 1, 1, 1)
        expected_input = (1 - s) * x0 + s * noise
        if clean:  # the sampler writes the clean motion latents into the first slots
            expected_input[:, :, :2] = x0[:, :, :2]
        torch.testing.assert_close(seen["x"], expected_input, rtol=0, atol=1e-6)
        error = (seen["v"] - (noise - x0)) ** 2
        torch.testing.assert_close(loss, error[:, :, 2:].mean(), rtol=1e-6, atol=0)  # slots 0-1 do not count


def test_image_to_video_batches_come_from_speechless_clips(tmp_path):
    mixed = load_cache(write_synthetic_cache(str(tmp_path / "c"), windows=4, frames=9, latent_size=(4, 4),
                                             silent_windows=2))
    silent = {w.path for w in mixed.windows if w.task == "i2v"}
    assert len(silent) == 2
    planner = BatchPlanner(mixed, 1, 0.0, 0.0, 32, torch.Generator().manual_seed(0),
                           mix=TaskMix(zero_audio_share=0.5, continuation_share=0.0))
    picked = []
    planner.loader = lambda info: picked.append(info.path) or read_window(info)
    for _ in range(40):
        batch = planner.next_batch()
        # Zero-audio batches take the speechless clips; talking batches never zero a talking window.
        assert batch.audio.eq(0).all() if picked[-1] in silent else batch.audio.ne(0).any()
    share = sum(p in silent for p in picked) / len(picked)
    assert 0.3 < share < 0.7  # the image-to-video share draws the speechless clips, the rest talk


def _shifted_cdf(x: float, k: float) -> float:
    """P(s <= x) for s = k u / (1 + (k - 1) u), u ~ U(0, 1): u <= x / (k - (k - 1) x)."""
    return x / (k - (k - 1) * x)


def test_training_timesteps_follow_the_shift_formula(cache, tmp_path):
    model = _model()
    seen = []
    model.register_forward_pre_hook(lambda m, args, kwargs: seen.append(args[1] / 1000), with_kwargs=True)
    settings = TrainSettings(steps=4, batch_size=64, shift=5.0, seed=2, learning_rate=1e-6, **QUICK)
    AdapterTrainer(model, cache, settings, str(tmp_path / "a")).run()
    sigmas = torch.cat(seen).sort().values
    n = sigmas.numel()
    assert n == 256
    grid = [i / 20 for i in range(1, 20)]
    empirical = [float((sigmas <= x).float().mean()) for x in grid]
    gap = max(abs(e - _shifted_cdf(x, 5.0)) for e, x in zip(empirical, grid))
    assert gap < 1.63 / math.sqrt(n), gap  # Kolmogorov-Smirnov, 1% level
    unshifted = max(abs(e - x) for e, x in zip(empirical, grid))
    assert unshifted > 0.3  # without the shift the draws would be uniform

    draws = draw_flow((20000, 1), torch.Generator().manual_seed(0), 11.0).sigma
    for x in (0.3, 0.6, 0.9):
        assert abs(float((draws <= x).float().mean()) - _shifted_cdf(x, 11.0)) < 0.015


def test_frozen_parameters_never_get_gradients(cache, tmp_path):
    model = _model().requires_grad_(True)  # as a model built in Python comes: every parameter trainable
    checked = []

    def inspect(n, message):
        params = dict(model.named_parameters())
        frozen = [k for k, p in params.items() if not is_audio_key(k) and (p.grad is not None or p.requires_grad)]
        trained = [k for k, p in params.items() if is_audio_key(k) and p.grad is not None]
        checked.append((frozen, len(trained), len([k for k in params if is_audio_key(k)])))

    settings = TrainSettings(steps=2, batch_size=2, learning_rate=1e-3, **QUICK)
    AdapterTrainer(model, cache, settings, str(tmp_path / "f"), TrainHooks(progress=inspect)).run()
    assert len(checked) == 2
    for frozen, trained, audio in checked:
        assert frozen == [] and trained == audio > 0


def _one_step(cache, tmp_path, name, **overrides):
    """Self-attention calls per block and the adapter's gradients of one training step."""
    model = _model()
    calls = [0] * len(model.blocks)
    for index, block in enumerate(model.blocks):
        block.self_attn.register_forward_hook(lambda m, a, o, index=index: calls.__setitem__(index, calls[index] + 1))
    grads = {}

    def keep_grads(n, message):
        grads.update({k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None})

    settings = TrainSettings(steps=1, batch_size=2, learning_rate=1e-3, seed=5, **{**QUICK, **overrides})
    AdapterTrainer(model, cache, settings, str(tmp_path / name), TrainHooks(progress=keep_grads)).run()
    return calls, grads


def test_checkpointed_blocks_are_recomputed_in_the_backward_pass(cache, tmp_path):
    plain_calls, plain = _one_step(cache, tmp_path, "plain")
    assert plain_calls == [1, 1] and plain
    for offload in (False, True):
        calls, grads = _one_step(cache, tmp_path, f"ckpt{offload}", gradient_checkpointing=True,
                                 offload_activations=offload)
        assert calls == [2, 2]  # the forward, then the recomputation in the backward pass
        assert grads.keys() == plain.keys()
        for key in plain:
            torch.testing.assert_close(grads[key], plain[key], rtol=1e-5, atol=1e-7)


def test_loss_falls_at_the_papers_learning_rate(tmp_path):
    cache = synthetic_cache(str(tmp_path / "cache"), windows=4, seed=3)
    model = _model(seed=2)

    def fixed_loss():
        g = torch.Generator().manual_seed(99)
        planner = BatchPlanner(cache, 4, 0.0, 0.0, 32, g)
        with torch.no_grad():
            return sum(float(flow_matching_loss(model, b, draw_flow(b.latents.shape, g, 5.0), False))
                       for b in (planner.next_batch() for _ in range(4)))

    before = fixed_loss()
    settings = TrainSettings(steps=100, batch_size=2, learning_rate=2e-5, seed=1, save_dtype="fp32", **QUICK)
    result = AdapterTrainer(model, cache, settings, str(tmp_path / "lr")).run()
    assert len(result.losses) == 100
    from safetensors.torch import load_file

    with torch.no_grad():  # the model got its own layers back; put the trained ones in
        own = dict(model.named_parameters())
        for key, value in load_file(result.adapter_path).items():
            own[key].copy_(value)
    after = fixed_loss()
    # Fixed batches, noise and flow times, seeded run: about 0.9 % lower after 100 steps of 2e-5
    # (Adam moves each weight about 2e-5 a step); with no learning it would not move at all.
    assert after < 0.995 * before, (before, after)


def test_bad_settings_fail_before_the_first_step_and_write_nothing(cache, tmp_path):
    model = _model()
    for bad, message in [(dict(save_dtype="fp8"), "save_dtype must be one of bf16, fp16, fp32"),
                         (dict(optimizer="sgd"), "optimizer must be one of auto, adamw, adamw8bit"),
                         (dict(ema_decay=1.0), "ema_decay must be in"),
                         (dict(continuation_mode="loop"), "continuation_mode must be one of"),
                         (dict(preview_steps=0), "preview_steps >= 1"),
                         (dict(max_grad_norm=-1.0), "max_grad_norm must be >= 0"),
                         (dict(offload_activations=True, gradient_checkpointing=False), "offload_activations needs")]:
        with pytest.raises(GenerationInputError, match=message):
            AdapterTrainer(model, cache, TrainSettings(steps=2, **bad), str(tmp_path / "bad"))
    assert list(tmp_path.iterdir()) == []


def test_optional_packages_are_named_before_the_first_step(cache, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("bitsandbytes", "tensorboard") else real(name, *a))
    for option, package in ((dict(optimizer="adamw8bit"), "pip install bitsandbytes"),
                            (dict(tensorboard=True), "pip install tensorboard")):
        with pytest.raises(GenerationInputError, match=package):
            AdapterTrainer(_model(), cache, TrainSettings(steps=2, **option), str(tmp_path / "opt"))
    assert list(tmp_path.iterdir()) == []
