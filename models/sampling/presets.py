"""Few-step presets for step-distilled LoRAs: the timesteps (and shift) each was trained for, its
sampler, and the guidance the MultiTalk and InfiniteTalk authors give for LoRAs (text scale 1,
so two-pass audio guidance, audio scale 2).

- lightx2v (Wan21_T2V_14B_lightx2v_cfg_step_distill, 4 steps): lightx2v's step-distill config for
  Wan2.1 lists the timesteps 1000, 750, 500, 250 with sample_shift 5 (shifted: 1000, 937.5,
  833.3, 625), and its scheduler re-noises each step's clean estimate with fresh noise ("lcm").
  The "euler" variant takes the same timesteps with the deterministic flow update.
- FusioniX (Wan2.1_I2V_14B_FusionX_LoRA, 8 steps): the MultiTalk and InfiniteTalk READMEs run it
  with --sample_steps 8 --sample_shift 2 on the usual shifted linspace and Euler update.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

from ..errors import GenerationInputError

LORA_GUIDANCE = (1.0, 2.0)  # (text, audio): the READMEs' values "after applying LoRA"


@dataclass(frozen=True)
class SamplerPreset:
    label: str
    steps: int
    shift: float
    solver: str
    step_list: Optional[tuple[float, ...]]  # unshifted training timesteps; None: the shifted linspace
    text_scale: float = LORA_GUIDANCE[0]
    audio_scale: float = LORA_GUIDANCE[1]


LIGHTX2V_STEPS = (1000.0, 750.0, 500.0, 250.0)
PRESETS = {
    "lightx2v_4step": SamplerPreset("lightx2v 4-step", 4, 5.0, "lcm", LIGHTX2V_STEPS),
    "lightx2v_4step_euler": SamplerPreset("lightx2v 4-step (Euler)", 4, 5.0, "euler", LIGHTX2V_STEPS),
    "fusionix_8step": SamplerPreset("FusioniX 8-step", 8, 2.0, "euler", None),
}
PRESET_CHOICES = ("none",) + tuple(PRESETS)


def check_preset(name: str) -> None:
    if name not in PRESET_CHOICES:
        raise GenerationInputError(f"Unknown sampler preset '{name}': choose one of {', '.join(PRESET_CHOICES)}.")


def apply_preset(settings, name: str):
    """(settings with the preset's steps, timesteps, shift, sampler and scales; a note), or as is."""
    check_preset(name)
    if name == "none":
        return settings, None
    p = PRESETS[name]
    steps = "timesteps " + ", ".join(f"{t:g}" for t in p.step_list) if p.step_list else "the linspace schedule"
    note = (f"Preset {p.label}: {p.steps} steps on {steps}, shift {p.shift:g}, sampler {p.solver}, text scale "
            f"{p.text_scale:g} (two-pass audio guidance), audio scale {p.audio_scale:g}; the sampler's own steps, "
            "shift, scales and sampler are not used.")
    return dataclasses.replace(settings, steps=p.steps, shift=p.shift, solver=p.solver, step_list=p.step_list,
                               text_scale=p.text_scale, audio_scale=p.audio_scale), note
