"""AnyTalker in the pack's sampling loop (models/sampling/generate.py): what differs per window.

The loop (windows x steps, motion frames, colour correction, progress, streaming) is shared; this
adapter supplies AnyTalker's parts (FACTS.md §4, §9):
- y: the VAE latent of the known frames then mid-grey, with mask channels that are ones on the
  known frames and the expanded face regions elsewhere (the official: one known frame);
- the model call with every identity's audio, face features and face masks;
- guidance with one scale and two passes: cond (prompt, audio) and uncond (negative prompt, zero
  audio, same faces and masks): uncond + s (cond - uncond); scale 1 runs the cond pass alone;
- the official schedule (UniPC with its shift-5 sigmas), the model seeing int64(sigma * 1000).

Mode "single" with a window of the whole clip is the official one-pass generation. The official
has no long-video mode; "multitalk" (chain on the last generated frames) and "infinitetalk"
(re-anchor on the reference, last frames as clean latents) are the pack's extension.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

import torch

from ..errors import GenerationInputError
from ..sampling.anchors import StaticConditions
from ..sampling.conditioning import encode_frames, latent_frames
from ..sampling.generate import GenerationInputs, Hooks, VideoGenerator
from ..sampling.plan import Window
from ..sampling.settings import SamplerSettings
from ..sampling.solvers import SOLVERS
from .masks import dit_mask
from .pipeline import Identities
from .schedule import NUM_TRAIN_TIMESTEPS, UniPCSampler, guide

GREY = 0.5  # zero in the VAE's [-1, 1] pixel space: the official pads the window with zero frames


class AnyTalkerSolver:
    """The official sigmas; "unipc" steps as the official, "euler" is x + v (sigma_next - sigma)."""

    def __init__(self, name: str, steps: int, shift: float):
        if name not in SOLVERS:
            raise GenerationInputError(f"Unknown sampler '{name}'; choose one of {', '.join(SOLVERS)}.")
        self.name = name
        self.unipc = UniPCSampler(steps, shift)
        self.model_timesteps = self.unipc.timesteps  # [steps] int64, what the model sees
        self.timesteps = self.unipc.sigmas.float() * NUM_TRAIN_TIMESTEPS  # [steps + 1] noise levels, ends at 0

    def step(self, latent: torch.Tensor, velocity: torch.Tensor, index: int) -> torch.Tensor:
        if self.name == "unipc":
            return self.unipc.step(latent, velocity, index)
        sigmas = self.unipc.sigmas
        return latent + velocity * (sigmas[index + 1] - sigmas[index]).to(latent.device)


@dataclass
class FaceConditions(StaticConditions):
    """One reference image (resized, unclamped as the official VAE input), one prompt, static face masks."""

    def colour_reference(self, window: Window) -> torch.Tensor:
        return self.reference.clamp(0, 1)


def check_anytalker_inputs(inputs: GenerationInputs, faces: torch.Tensor) -> None:
    height, width = inputs.reference.shape[:2]
    if height < 32 or width < 32 or height % 16 or width % 16:
        raise GenerationInputError(f"The AnyTalker reference is {width}x{height}; both sides must be multiples of 16 "
                                   "(the output size MultiTalk Speakers computes from the image).")
    counts = {len(inputs.audio_features), faces.shape[0], inputs.masks.shape[0]}
    if len(counts) != 1:
        raise GenerationInputError(f"{len(inputs.audio_features)} audio tracks, {faces.shape[0]} faces and "
                                   f"{inputs.masks.shape[0]} face masks: give one face per track (left to right).")
    if any(f.dim() != 4 for f in inputs.audio_features):
        raise GenerationInputError("AnyTalker needs windowed audio features [F, 5, layers, C] per speaker: encode the "
                                   "audio with the wav2vec2-base-960h loader (MultiTalk Audio Encode does it).")
    if tuple(inputs.masks.shape[1:]) != (height // 16, width // 16):
        raise GenerationInputError(f"Face masks are {tuple(inputs.masks.shape[1:])} but the video's token grid is "
                                   f"{(height // 16, width // 16)}: build both from the same MultiTalk Speakers node.")


class AnyTalkerGenerator(VideoGenerator):
    """The pack's generator with AnyTalker's conditions, model call, guidance and schedule.

    inputs.audio_features: per identity [F, 5, layers, C] (the official windows, bf16 values);
    inputs.masks: the identities' token masks [N, h/16, w/16]; inputs.reference: the image
    bicubic-resized to the video size (0..1 scale, not clamped)."""

    def __init__(self, model: Any, vae: Any, inputs: GenerationInputs, identities: Identities,
                 settings: SamplerSettings, hooks: Optional[Hooks] = None):
        self.faces, self.face_regions = identities.faces, identities.face_regions
        inputs.masks = identities.face_masks
        inputs.conditions = inputs.conditions or FaceConditions(inputs.reference, inputs.clip_features,
                                                                inputs.positive, inputs.masks)
        super().__init__(model, vae, inputs, settings, hooks)

    def _check_inputs(self, inputs: GenerationInputs, settings: SamplerSettings) -> None:
        check_anytalker_inputs(inputs, self.faces)

    def _condition(self, known: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Known frames [k, H, W, 3] -> (y [1, 20, T, h, w], the known frames' latent [1, 16, t_k, h, w])."""
        count, height, width, _ = known.shape
        length = self.settings.window
        pad = torch.full((length - count, height, width, 3), GREY, dtype=known.dtype)
        latent = encode_frames(self.vae, torch.cat([known.cpu(), pad]))  # [1, 16, T, h, w]
        mask = dit_mask(self.face_regions, tuple(latent.shape[-2:]), length, known=count)  # [4, T, h, w]
        return torch.cat([mask[None], latent], dim=1), latent[:, :, :latent_frames(count)]

    def _solver(self) -> AnyTalkerSolver:
        return AnyTalkerSolver(self.settings.solver, self.settings.steps, self.settings.shift)

    def _model_time(self, solver: AnyTalkerSolver, index: int) -> torch.Tensor:
        return solver.model_timesteps[index]

    def _batch(self, window: Window, y: torch.Tensor, clip: torch.Tensor) -> dict:
        """Model inputs of the guidance passes, stacked on the batch axis."""
        length = self.settings.window
        audio = torch.stack([a[window.start:window.start + length] for a in self.audio])  # [N, W, 5, layers, C]
        passes = ("cond",) if math.isclose(self.settings.text_scale, 1.0) else ("cond", "uncond")
        texts = {"cond": self.conditions.positive(window), "uncond": self.inputs.negative}
        dtype = self.model.compute_dtype
        return dict(
            passes=passes, context=[texts[p].to(self.device, dtype) for p in passes],
            audio=torch.stack([audio if p == "cond" else torch.zeros_like(audio) for p in passes]).to(
                self.device, dtype),
            y=y.to(self.device), clip=clip.to(self.device), faces=self.faces.to(self.device, dtype),
            masks=self.conditions.speaker_masks(window).to(self.device))

    def _guided_velocity(self, latent: torch.Tensor, t: torch.Tensor, batch: dict, apg, step: int = 0) -> torch.Tensor:
        passes, count = batch["passes"], len(batch["passes"])
        groups = [list(range(count))] if self.settings.batch_guidance else [[i] for i in range(count)]
        preds = {}
        with torch.no_grad():
            for group in groups:
                out = self.model(latent.expand(len(group), -1, -1, -1, -1), t.expand(len(group)).to(self.device),
                                 [batch["context"][i] for i in group], batch["clip"], batch["y"],
                                 audio=batch["audio"][group], faces=batch["faces"], face_masks=batch["masks"])
                preds.update({passes[i]: out[j:j + 1].float() for j, i in enumerate(group)})
        cond, scale = preds["cond"], self.settings.text_scale
        if "uncond" not in preds:
            return cond
        if apg is None:
            return guide(cond, preds["uncond"], scale)
        return cond + (scale - 1) * apg.guide("text", cond - preds["uncond"], cond)
