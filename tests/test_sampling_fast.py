"""The few-step path: presets for distilled LoRAs (their trained timesteps and shift, written here
from the LoRAs' sources), the re-noising sampler, per-step audio guidance (checked step by step
from what the model returned) and the errors for settings that cannot work."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from comfyui_multitalk.models.errors import GenerationInputError
from comfyui_multitalk.models.sampling.generate import SamplerSettings, VideoGenerator
from comfyui_multitalk.models.sampling.options import SamplerOptions, apply_options, parse_schedule
from comfyui_multitalk.models.sampling.presets import apply_preset
from comfyui_multitalk.models.sampling.settings import validate_settings
from comfyui_multitalk.models.sampling.solvers import make_solver

sys.path.insert(0, str(Path(__file__).parent))
from sampling_stubs import WINDOW, StubVAE, tiny_inputs  # noqa: E402

# ModelTC/LightX2V configs/distill/wan21/wan_i2v_distill_lora_4step_cfg.json: denoising_step_list
# [1000, 750, 500, 250], sample_shift 5; its WanStepDistillScheduler takes sigma = t / 1000 shifted
# to 5 sigma / (1 + 4 sigma): 1, 0.9375, 0.8333, 0.625, then 0 after the last step.
LIGHTX2V_TIMESTEPS = [1000.0, 937.5, 2500 / 3, 625.0, 0.0]


def test_lightx2v_preset_runs_on_its_trained_timesteps():
    for name, solver in (("lightx2v_4step", "lcm"), ("lightx2v_4step_euler", "euler")):
        s, note = apply_preset(SamplerSettings(steps=40, shift=7.0, text_scale=5.0, audio_scale=4.0), name)
        assert (s.steps, s.shift, s.solver, s.text_scale, s.audio_scale) == (4, 5.0, solver, 1.0, 2.0)
        timesteps = make_solver(s.solver, s.steps, s.shift, s.step_list).timesteps
        assert timesteps.tolist() == pytest.approx(LIGHTX2V_TIMESTEPS, abs=1e-3)
        assert "1000, 750, 500, 250" in note and "not used" in note


def test_fusionix_preset_is_the_readmes_command():
    # MultiTalk and InfiniteTalk READMEs, FusioniX: --sample_steps 8 --sample_shift 2
    # --sample_text_guide_scale 1.0 --sample_audio_guide_scale 2.0, on the usual schedule.
    s, _ = apply_preset(SamplerSettings(), "fusionix_8step")
    assert (s.steps, s.shift, s.solver, s.text_scale, s.audio_scale, s.step_list) == (8, 2.0, "euler", 1.0, 2.0, None)
    unit = np.array(list(np.linspace(1000, 1, 8, dtype=np.float32)) + [0.0]) / 1000
    expected = 2 * unit / (1 + unit) * 1000
    assert make_solver(s.solver, s.steps, s.shift).timesteps.tolist() == pytest.approx(expected.tolist(), abs=1e-3)


def test_renoising_sampler_takes_x0_then_fresh_noise():
    solver = make_solver("lcm", 4, 5.0, (1000, 750, 500, 250), torch.Generator().manual_seed(4))
    x, v = torch.randn(1, 16, 2, 4, 6), torch.randn(1, 16, 2, 4, 6)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(4))
    clean = x - v * 0.9375  # sigma of step 1
    assert torch.allclose(solver.step(x, v, 1), (1 - 2.5 / 3) * clean + 2.5 / 3 * noise, atol=1e-6)
    assert torch.allclose(solver.step(x, v, 3), x - v * 0.625, atol=1e-6)  # the last step: x0, no noise


class Recorder:
    """The DiT, recording each call: latent, timestep, which passes (by text and audio) and outputs."""

    def __init__(self, model, inputs):
        self.model, self.inputs, self.calls = model, inputs, []
        self.compute_dtype = model.compute_dtype

    def parameters(self):
        return self.model.parameters()

    def __call__(self, x, t, context, *args, audio=None, **kwargs):
        out = self.model(x, t, context, *args, audio=audio, **kwargs)
        names = [("cond" if torch.equal(c, self.inputs.positive) else "no_text") if bool(a.abs().sum() > 0)
                 else ("no_audio" if torch.equal(c, self.inputs.positive) else "uncond") for c, a in zip(context, audio)]
        self.calls.append(dict(x=x[:1].clone(), t=float(t[0]), out=dict(zip(names, out.split(1)))))
        return out


@pytest.mark.parametrize("text_scale,schedule", [(1.0, (3.0, 1.0, 2.0, 1.0)), (5.0, (4.0, 1.0, 2.5, 4.0))])
def test_audio_schedule_applies_each_steps_scale(tiny_dit, text_scale, schedule):
    inputs = tiny_inputs(seed=2)
    recorder = Recorder(tiny_dit, inputs)
    s = SamplerSettings(steps=4, shift=5.0, seed=1, mode="single", window=WINDOW, text_scale=text_scale,
                        audio_scale=9.0, audio_schedule=schedule)
    VideoGenerator(recorder, StubVAE(), inputs, s).run()
    calls = recorder.calls
    full = ["cond", "no_audio"] if text_scale == 1 else ["cond", "no_text", "uncond"]
    for step, scale in enumerate(schedule):  # at scale 1 the audio-free pass is left out
        assert list(calls[step]["out"]) == (full if scale != 1 else full[:-1]), step
    for step in range(3):  # each update used that step's scale: x' = x - v (t - t') / 1000
        p, scale = calls[step]["out"], schedule[step]
        if text_scale == 1:
            v = p["cond"] if scale == 1 else p["no_audio"] + scale * (p["cond"] - p["no_audio"])
        elif scale == 1:
            v = p["no_text"] + text_scale * (p["cond"] - p["no_text"])
        else:
            v = p["uncond"] + text_scale * (p["cond"] - p["no_text"]) + scale * (p["no_text"] - p["uncond"])
        expected = calls[step]["x"] - v * (calls[step]["t"] - calls[step + 1]["t"]) / 1000
        assert torch.allclose(calls[step + 1]["x"], expected, atol=1e-5), step


def test_options_apply_over_the_settings():
    options = SamplerOptions("lightx2v_4step", parse_schedule("2, 2; 1, 1"))
    s, notes = apply_options(SamplerSettings(), options)
    assert (s.steps, s.audio_schedule, s.audio_scale_at(2)) == (4, (2.0, 2.0, 1.0, 1.0), 1.0)
    assert "Preset lightx2v 4-step" in notes[0] and "2, 2, 1, 1" in notes[1]
    validate_settings(s)
    assert parse_schedule("  ") is None and apply_options(s, None) == (s, [])


@pytest.mark.parametrize("settings,message", [
    (dict(steps=4, audio_schedule=(2.0, 1.0, 1.0)), "has 3 values but the sampler runs 4 steps"),
    (dict(steps=2, audio_schedule=(2.0, 200.0)), "an audio_scale_schedule value is 200.0"),
    (dict(steps=3, step_list=(1000.0, 750.0, 500.0, 250.0)), "has 4 entries but the sampler runs 3 steps"),
    (dict(steps=4, step_list=(1000.0, 750.0, 800.0, 250.0)), "must fall strictly"),
    (dict(steps=4, solver="dpm"), "Unknown sampler 'dpm'"),
])
def test_bad_few_step_settings(settings, message):
    with pytest.raises(GenerationInputError, match=message):
        validate_settings(SamplerSettings(**settings))


def test_bad_options():
    with pytest.raises(GenerationInputError, match="has 'x2', not a number"):
        parse_schedule("2, x2")
    with pytest.raises(GenerationInputError, match="Unknown sampler preset 'turbo'"):
        apply_options(SamplerSettings(), SamplerOptions("turbo"))
