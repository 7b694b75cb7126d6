"""Step caches (TeaCache, MagCache, EasyCache): threshold 0 gives the uncached frames bit for bit;
a positive threshold skips steps and each pass reuses its own residual, checked against the rules
written out here from the methods' official code, applied pass by pass around the plain model."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from comfyui_multitalk.models.errors import GenerationInputError
from comfyui_multitalk.models.sampling.generate import SamplerSettings, VideoGenerator
from comfyui_multitalk.models.sampling.step_cache import StepCacheSettings, make_step_cache
from comfyui_multitalk.models.sampling.step_cache.magcache import MagCache, RATIOS, nearest_ratios
from comfyui_multitalk.models.sampling.step_cache.teacache import COEFFICIENTS

sys.path.insert(0, str(Path(__file__).parent))
from sampling_stubs import H, PASSES_3, W, WINDOW, PerPassModel, StubVAE, tiny_inputs  # noqa: E402

# MeiGen-AI/MultiTalk wan/modules/multitalk_model.py, teacache_init(use_ret_steps=True) (the default
# its generate() uses): coefficients of the polynomial on e0's relative L1 change, highest power first.
OFFICIAL_TEACACHE = {
    "480p": [2.57151496e+05, -3.54229917e+04, 1.40286849e+03, -1.35890334e+01, 1.32517977e-01],
    "720p": [8.10705460e+03, 2.13393892e+03, -3.72934672e+02, 1.66203073e+01, -4.17769401e-02],
}
# Zehong-Ma/MagCache MagCache4Wan2.1/magcache_generate.py, mag_ratios of I2V 480P, at 8 steps
# (nearest of 40: entries 0, 6, 11, 17, 22, 28, 33, 39), conditional and unconditional.
MAGCACHE_480P_8 = ([1.0, 0.98762, 0.99065, 0.98756, 0.98157, 0.97355, 0.9567, 0.92617],
                   [1.0, 0.98759, 0.99068, 0.98759, 0.98165, 0.97361, 0.95681, 0.92616])


def settings(steps: int, cache=None, **extra) -> SamplerSettings:
    return SamplerSettings(steps=steps, shift=5.0, seed=7, mode="single", window=WINDOW, cache=cache, **extra)


def run(model, s: SamplerSettings, inputs=None):
    generator = VideoGenerator(model, StubVAE(), inputs or tiny_inputs(), s)
    return generator.run(), generator


def test_official_tables():
    for key, values in OFFICIAL_TEACACHE.items():
        assert list(COEFFICIENTS[key]) == values
    for curve, expected in zip(RATIOS["480p"], MAGCACHE_480P_8):
        assert len(curve) == 40 and nearest_ratios(curve, 8) == expected
    assert nearest_ratios(RATIOS["720p"][0], 40) == list(RATIOS["720p"][0])


CHAINED = dict(steps=3, shift=5.0, seed=5, mode="multitalk", window=WINDOW, motion_frames=5)


@pytest.fixture(scope="module")
def uncached_chained(tiny_dit):
    """13 audio frames: 2 chained windows, so the per-window reset runs too."""
    return run(tiny_dit, SamplerSettings(**CHAINED), tiny_inputs(seed=3, frames=13))[0]


@pytest.mark.parametrize("kind", ["teacache", "magcache", "easycache"])
def test_threshold_zero_gives_the_uncached_frames_exactly(tiny_dit, uncached_chained, kind):
    cached = SamplerSettings(**CHAINED, cache=StepCacheSettings(kind, 0.0, start_step=1))
    got, generator = run(tiny_dit, cached, tiny_inputs(seed=3, frames=13))
    assert len(got.plan.windows) == 2
    assert torch.equal(got.frames, uncached_chained.frames)
    assert sum(generator.step_cache.skipped.values()) == 0 and "nothing skipped" in got.notes[-1]


def sinusoid(dim: int, t: torch.Tensor) -> torch.Tensor:
    """Wan's timestep embedding: cos then sin of t * 10000^(-i / half)."""
    half = dim // 2
    angles = t.double()[:, None] * torch.pow(10000.0, -torch.arange(half, dtype=torch.float64) / half)
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=1).float()


class BlockRule:
    """TeaCache or MagCache written out: per pass, skip (blocks' output = input + kept residual) or run."""

    def __init__(self, model, decide):
        self.model, self.decide, self.state, self.skipped = model, decide, {}, {}

    def item(self, name, step, x, t, run):
        state = self.state.setdefault(name, {"residual": None})
        skip = self.decide(state, name, step, t) and state["residual"] is not None
        self.skipped[name] = self.skipped.get(name, 0) + skip
        out, residual = run(state["residual"] if skip else None)
        if not skip:
            state["residual"] = residual
        return out


def teacache_rule(model, threshold: float, start: int):
    rescale = np.poly1d(OFFICIAL_TEACACHE["480p"])

    def decide(state, name, step, t):
        with torch.no_grad():
            e0 = model.time_projection(model.time_embedding(sinusoid(model.config.freq_dim, t))).unflatten(1, (6, -1))
        previous, state["e0"] = state.get("e0"), e0
        if step < start or previous is None:
            state["acc"] = 0.0
            return False
        state["acc"] = state.get("acc", 0.0) + rescale(((e0 - previous).abs().mean() / previous.abs().mean()).item())
        if state["acc"] < threshold:
            return True
        state["acc"] = 0.0
        return False
    return decide


def magcache_rule(threshold: float, start: int, k: int):
    def decide(state, name, step, t):
        curve = MAGCACHE_480P_8[0 if name == "cond" else 1]
        if step >= start and state["residual"] is not None:
            state["ratio"] = state.get("ratio", 1.0) * curve[step]
            state["skips"] = state.get("skips", 0) + 1
            state["err"] = state.get("err", 0.0) + abs(1 - state["ratio"])
            if state["err"] < threshold and state["skips"] <= k:
                return True
        state.update(ratio=1.0, skips=0, err=0.0)
        return False
    return decide


@pytest.mark.parametrize("kind,threshold,start,batched", [
    ("teacache", 8000.0, 2, True), ("magcache", 0.12, 1, True), ("magcache", 0.12, 1, False)])
def test_block_caches_skip_and_reuse_each_pass_residual(tiny_dit, kind, threshold, start, batched):
    steps = 8
    decide = teacache_rule(tiny_dit, threshold, start) if kind == "teacache" else magcache_rule(threshold, start, 2)
    rule = BlockRule(tiny_dit, decide)
    expected, _ = run(PerPassModel(tiny_dit, PASSES_3, rule.item), settings(steps))
    cache = StepCacheSettings(kind, threshold, start_step=start)
    got, generator = run(tiny_dit, settings(steps, cache, batch_guidance=batched))  # one call per pass when off
    assert generator.step_cache.skipped == rule.skipped
    assert all(0 < n < steps - start for n in rule.skipped.values()), rule.skipped
    assert (got.frames - expected.frames).abs().max().item() < 1e-5
    assert f"cond {rule.skipped['cond']}/{steps}" in got.notes[-1]


class EasyRule:
    """EasyCache written out per pass: output = x + (last out - its x) while k-predicted change stays small."""

    def __init__(self, threshold: float, start: int, end: int):
        self.threshold, self.start, self.end, self.state, self.skipped = threshold, start, end, {}, {}

    def item(self, name, step, x, t, run):
        s = self.state.setdefault(name, {"last_in": None, "run_in": None, "run_out": None, "k": None, "err": 0.0})
        skip = False
        if self.start <= step < self.end and s["last_in"] is not None and s["k"] is not None:
            s["err"] += s["k"] * (x - s["last_in"]).abs().mean().item() / s["run_out"].abs().mean().item()
            skip = s["err"] < self.threshold
            s["err"] = s["err"] if skip else 0.0
        else:
            s["err"] = 0.0
        s["last_in"] = x
        self.skipped[name] = self.skipped.get(name, 0) + skip
        if skip:
            return x + (s["run_out"] - s["run_in"])
        out, _ = run()
        if s["run_out"] is not None:
            s["k"] = (out - s["run_out"]).abs().mean().item() / (x - s["run_in"]).abs().mean().item()
        s["run_in"], s["run_out"] = x, out
        return out


def test_easycache_skips_and_reuses_each_pass_transformation(tiny_dit):
    steps, start, threshold = 10, 2, 0.2
    rule = EasyRule(threshold, start, steps - 1)  # the official always runs the last step
    expected, _ = run(PerPassModel(tiny_dit, PASSES_3, rule.item), settings(steps))
    got, generator = run(tiny_dit, settings(steps, StepCacheSettings("easycache", threshold, start_step=start)))
    assert generator.step_cache.skipped == rule.skipped
    assert all(0 < n < steps - start - 1 for n in rule.skipped.values()), rule.skipped
    assert (got.frames - expected.frames).abs().max().item() < 1e-5


def test_each_pass_decides_with_its_own_state():
    cache = MagCache(StepCacheSettings("magcache", 0.05, start_step=1, max_skips=5), 4,
                     ((1.0, 0.999, 0.999, 0.999), (1.0, 0.9, 0.9, 0.9)))
    cache.new_window()
    for name in ("cond", "uncond"):
        assert cache.decide(name, 0, None) is False
        cache.keep_residual(name, torch.zeros(1))
    assert [cache.decide("cond", i, None) for i in (1, 2, 3)] == [True, True, True]
    assert [cache.decide("uncond", i, None) for i in (1, 2, 3)] == [False, False, False]


def test_defaults_and_notes(tiny_dit):
    got, generator = run(tiny_dit, settings(12, StepCacheSettings("magcache"), text_scale=1.0, audio_scale=2.0))
    cache = generator.step_cache
    assert (cache.threshold, cache.start, cache.end, cache.max_skips) == (0.12, 2, 12, 2)  # 20% of 12 steps
    assert set(cache.seen) == {"cond", "no_audio"} and "MagCache (threshold 0.12" in got.notes[-1]
    tea = make_step_cache(StepCacheSettings("teacache"), 40, 720, 1280, tiny_dit)
    assert (tea.threshold, tea.start, tea.end) == (0.2, 5, 40)
    assert list(tea.rescale.coeffs) == OFFICIAL_TEACACHE["720p"]
    easy = make_step_cache(StepCacheSettings("easycache"), 40, H, W, tiny_dit)
    assert (easy.threshold, easy.start, easy.end) == (0.05, 10, 39)


@pytest.mark.parametrize("cache,message", [
    (StepCacheSettings("deepcache"), "Unknown step cache 'deepcache'"),
    (StepCacheSettings("teacache", start_step=6, end_step=4), "end_step 4 is not after start_step 6"),
    (StepCacheSettings("magcache", max_skips=0), "magcache_k is 0"),
    (StepCacheSettings("easycache", threshold=float("nan")), "cache_threshold is nan"),
])
def test_bad_cache_settings(tiny_dit, cache, message):
    with pytest.raises(GenerationInputError, match=message):
        VideoGenerator(tiny_dit, StubVAE(), tiny_inputs(), settings(4, cache))


def test_block_caches_need_a_model_with_the_shortcut(tiny_dit):
    wrapped = PerPassModel(tiny_dit, PASSES_3, lambda name, step, x, t, run: run()[0])
    with pytest.raises(GenerationInputError, match="use EasyCache"):
        VideoGenerator(wrapped, StubVAE(), tiny_inputs(), settings(4, StepCacheSettings("teacache")))
    VideoGenerator(wrapped, StubVAE(), tiny_inputs(), settings(4, StepCacheSettings("easycache")))
