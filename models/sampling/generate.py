"""The generation loop: windows x steps of guided flow sampling, decoded and streamed out.

MultiTalk chaining: each later window is conditioned on the last `motion` decoded frames of the
previous one (VAE-encoded into y; their latents, re-noised to the current t, overwrite the first
latent slots before the first step and after every step), CLIP on the last known frame.
InfiniteTalk re-anchoring: every window is conditioned on its anchor alone (y, CLIP): the
reference image, or a dubbed video's keyframe, or a timeline's image; the latents of the previous
window's last `motion` frames are written clean into the first latent slots at every step.
What each window is anchored on, prompted with and blended with comes from a WindowConditions
(anchors.py); a window that starts a segment carries nothing in.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch

from ..audio.windows import stack_speaker_windows
from ..errors import GenerationInputError
from .colour import match_colours
from .conditioning import decode_latent, encode_frames, latent_frames, window_condition
from .guidance import PASS_INPUTS, APGState, combine, guidance_passes, needed_passes
from .anchors import Anchor, StaticConditions, WindowBlend, WindowConditions
from .plan import Window, WindowPlan, mirror_extend, plan_windows
from .schedule import add_noise
from .settings import SamplerSettings, validate_settings
from .solvers import make_solver
from .step_cache import cached_predictions, make_step_cache
from .work import WorkMeter, count_work


@dataclass
class GenerationInputs:
    positive: torch.Tensor  # [L, text_dim] text embeddings
    negative: torch.Tensor  # [L', text_dim]
    reference: torch.Tensor  # [H, W, 3] in 0..1, bucketed (H, W multiples of 16)
    clip_features: torch.Tensor  # [1, 257, 1280] of the reference image
    audio_features: list[torch.Tensor]  # per speaker [T, 12, 768] on one timeline
    masks: torch.Tensor  # [S+1, H/8, W/8] speaker masks then background (latent grid)
    conditions: Optional[WindowConditions] = None  # dubbing / timelines; None: the fields above


@dataclass
class Hooks:
    """Callbacks into the caller: progress(units, message), interrupt check, frame sink."""

    progress: Callable[[int, str], None] = lambda n, message: None
    check_interrupt: Callable[[], None] = lambda: None
    on_frames: Optional[Callable[[torch.Tensor], None]] = None  # [n, H, W, 3] 0..1 as they are ready
    clip_encoder: Optional[Callable[[torch.Tensor], torch.Tensor]] = None  # [1, H, W, 3] -> [1, 257, 1280]
    # After every step: (the denoised estimate [1, 16, T, h, w] of the window, window index, step index),
    # e.g. for latent previews.
    on_step: Optional[Callable[[torch.Tensor, int, int], None]] = None


@dataclass
class GenerationResult:
    frames: Optional[torch.Tensor]  # [F, H, W, 3] 0..1 (None when streamed to on_frames only)
    frame_count: int
    plan: WindowPlan
    notes: list[str] = field(default_factory=list)


def validate_inputs(inputs: GenerationInputs, settings: SamplerSettings) -> None:
    height, width = inputs.reference.shape[:2]
    if height < 16 or width < 16 or height % 16 or width % 16:
        raise GenerationInputError(f"The reference image is {width}x{height}; both sides must be multiples of 16 "
                                   "pixels and at least 16 (use the bucketed image of MultiTalkSpeakers).")
    speakers, mask_count = len(inputs.audio_features), inputs.masks.shape[0] - 1
    if speakers > 1 and mask_count != speakers:
        raise GenerationInputError(f"{speakers} audio tracks but the speaker layout has {mask_count} speakers: "
                                   "give MultiTalkSpeakers the same number of speakers as tracks.")
    if tuple(inputs.masks.shape[-2:]) != (height // 8, width // 8):
        raise GenerationInputError(f"Speaker masks are {tuple(inputs.masks.shape[-2:])} but the image's latent grid "
                                   f"is {(height // 8, width // 8)}: build both from the same MultiTalkSpeakers node.")


class VideoGenerator:
    def __init__(self, model: Any, vae: Any, inputs: GenerationInputs, settings: SamplerSettings,
                 hooks: Optional[Hooks] = None):
        self._check_inputs(inputs, settings)
        validate_settings(settings)
        self.model, self.vae, self.inputs, self.settings = model, vae, inputs, settings
        self.hooks = hooks or Hooks()
        self.conditions = inputs.conditions or StaticConditions(inputs.reference, inputs.clip_features,
                                                                inputs.positive, inputs.masks)
        frames = inputs.audio_features[0].shape[0]
        self.plan = plan_windows(frames, settings.window, settings.motion_frames, settings.mode, settings.max_frames,
                                 self.conditions.segment_starts())
        needed = self.plan.covered_frames + 2  # +-2 frames of audio context at the end
        self.audio = [mirror_extend(f, needed) for f in inputs.audio_features]
        self.device = next(model.parameters()).device
        self.generator = torch.Generator().manual_seed(int(settings.seed))
        self.step_cache = make_step_cache(settings.cache, settings.steps, *inputs.reference.shape[:2], model)
        self._anchor_cache: dict[tuple, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        # VAE chunks and CLIP encodings are counted and checked for Cancel too (hooks read at call time).
        self.work = WorkMeter(lambda n, message: self.hooks.progress(n, message), lambda: self.hooks.check_interrupt())

    @property
    def total_units(self) -> int:
        return count_work(self.plan, self.settings.steps, self.hooks.clip_encoder is not None).total

    def run(self) -> GenerationResult:
        plan, keep_all = self.plan, self.hooks.on_frames is None
        kept, emitted, previous = [], 0, None
        for window in plan.windows:
            frames = self._window(window, None if window.fresh else previous)
            previous = frames[-plan.motion:]
            new = frames[window.keep_from:window.keep_to]
            emitted += new.shape[0]
            if keep_all:
                kept.append(new)
            else:
                self.hooks.on_frames(new)
        video = torch.cat(kept) if keep_all else None
        notes = list(plan.notes) + [n for n in self.conditions.notes if n not in plan.notes]
        if self.step_cache is not None:
            notes.append(self.step_cache.note())
        return GenerationResult(video, emitted, plan, notes)

    def _window(self, window: Window, previous: Optional[torch.Tensor]) -> torch.Tensor:
        settings = self.settings
        chained = settings.mode == "multitalk" and previous is not None
        name, lat = f"window {window.index + 1}/{len(self.plan.windows)}", latent_frames(settings.window)
        if chained:
            with self.work.vae(self.vae, "encode", lat, f"{name}, encoding"):
                y, known_latent = self._condition(previous)
            clip = self._clip(previous[-1:], name)
        else:  # the anchor alone: encoded once per distinct anchor
            y, known_latent, clip = self._anchor_condition(self.conditions.anchor(window), name, lat)
        motion, renoise = None, False
        if chained:
            motion, renoise = known_latent, True
        elif settings.mode == "infinitetalk":
            motion = known_latent
            if previous is not None:
                with self.work.vae(self.vae, "encode", latent_frames(previous.shape[0]), f"{name}, encoding"):
                    motion = encode_frames(self.vae, previous)
        blend = self.conditions.blend(window, settings.window, lambda frames: encode_frames(self.vae, frames))
        batch = self._batch(window, y, clip)
        latent = self._sample(window, batch, motion, renoise, blend)
        with self.work.vae(self.vae, "decode", lat, f"{name}, decoding"):
            frames = decode_latent(self.vae, latent)
        self.hooks.check_interrupt()
        frames = match_colours(frames, self.conditions.colour_reference(window), settings.colour_strength)
        return frames if blend is None else blend.frames(frames)

    def _anchor_condition(self, anchor: Anchor, name: str, lat: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(y, the anchor's latent, CLIP features) of an anchor, cached by its key."""
        if anchor.key not in self._anchor_cache:
            with self.work.vae(self.vae, "encode", lat, f"{name}, encoding"):
                y, latent = self._condition(anchor.image[None])
            clip = anchor.clip if anchor.clip is not None else self._encode_clip(anchor.image[None], name)
            self._anchor_cache = {anchor.key: (y, latent, clip)}  # anchors do not come back once left
        return self._anchor_cache[anchor.key]

    # Per-family steps (models/anytalker/sampling.py overrides them; the rest of the loop is shared).
    def _check_inputs(self, inputs: GenerationInputs, settings: SamplerSettings) -> None:
        validate_inputs(inputs, settings)

    def _condition(self, known: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Known frames [k, H, W, 3] -> (y [1, 20, T, h, w], their latent [1, 16, t_k, h, w])."""
        return window_condition(self.vae, known, self.settings.window)

    def _solver(self):
        settings = self.settings
        return make_solver(settings.solver, settings.steps, settings.shift, settings.step_list, self.generator)

    def _model_time(self, solver, index: int) -> torch.Tensor:
        """The timestep the model sees at step `index` (solver.timesteps also drive the motion re-noising)."""
        return solver.timesteps[index]

    def _clip(self, frame: torch.Tensor, name: str) -> torch.Tensor:
        if self.hooks.clip_encoder is None:  # no CLIP model given: keep the reference's features
            return self.inputs.clip_features
        return self.work.clip(self.hooks.clip_encoder, frame, f"{name}, CLIP")

    def _encode_clip(self, frame: torch.Tensor, name: str) -> torch.Tensor:
        if self.hooks.clip_encoder is None:
            raise GenerationInputError("Windows anchored on a source video's keyframes or a timeline's images need "
                                       "their own CLIP features: connect clip_vision to the sampler.")
        return self.work.clip(self.hooks.clip_encoder, frame, f"{name}, CLIP")

    def _batch(self, window: Window, y: torch.Tensor, clip: torch.Tensor) -> dict:
        """Model inputs of the guidance passes, stacked on the batch axis."""
        audio = stack_speaker_windows(self.audio, window.start, self.settings.window)  # [S, F, 5, 12, 768]
        passes = guidance_passes(self.settings.text_scale)
        texts = {"positive": self.conditions.positive(window), "negative": self.inputs.negative}
        zeros = torch.zeros_like(audio)
        dtype = self.model.compute_dtype
        return dict(
            passes=passes,
            context=[texts[PASS_INPUTS[p][0]].to(self.device, dtype) for p in passes],
            audio=torch.stack([audio if PASS_INPUTS[p][1] else zeros for p in passes]).to(self.device, dtype),
            active=[audio.shape[0] if PASS_INPUTS[p][1] else 1 for p in passes],
            y=y.to(self.device), clip=clip.to(self.device),
            masks=self.conditions.speaker_masks(window).to(self.device))

    def _sample(self, window: Window, batch: dict, motion: Optional[torch.Tensor], renoise: bool,
                blend: Optional[WindowBlend] = None) -> torch.Tensor:
        settings = self.settings
        solver = self._solver()
        if self.step_cache is not None:
            self.step_cache.new_window()
        shape = (1, 16, latent_frames(settings.window), *batch["y"].shape[-2:])
        noise = torch.randn(shape, generator=self.generator).to(self.device)
        apg = APGState(settings.apg_momentum, settings.apg_norm_threshold) if settings.apg else None
        latent = self._constrain(noise, noise, blend, motion, renoise, solver.timesteps[0])
        count = len(self.plan.windows)
        for i in range(settings.steps):
            self.hooks.check_interrupt()
            velocity = self._guided_velocity(latent, self._model_time(solver, i), batch, apg, i)
            if self.hooks.on_step is not None:  # x0 = x_t - t * v (flow matching)
                self.hooks.on_step(latent - velocity * (solver.timesteps[i] / 1000), window.index, i)
            latent = self._constrain(solver.step(latent, velocity, i), noise, blend, motion, renoise,
                                     solver.timesteps[i + 1])
            self.hooks.progress(1, f"window {window.index + 1}/{count}, step {i + 1}/{settings.steps}")
        return latent

    def _constrain(self, latent: torch.Tensor, noise: torch.Tensor, blend: Optional[WindowBlend],
                   motion: Optional[torch.Tensor], renoise: bool, t: torch.Tensor) -> torch.Tensor:
        """What is known at time t: the source outside the masked region, then the motion slots."""
        if blend is not None:
            latent = blend.latent(latent, noise, t)
        return self._write_motion(latent, motion, renoise, t)

    def _write_motion(self, latent: torch.Tensor, motion: Optional[torch.Tensor], renoise: bool,
                      t: torch.Tensor) -> torch.Tensor:
        if motion is None:
            return latent
        slots = motion.shape[2]
        motion = motion.to(latent.device, latent.dtype)
        if renoise:
            noise = torch.randn(motion.shape, generator=self.generator).to(latent.device)
            motion = add_noise(motion, noise, t)
        latent = latent.clone()
        latent[:, :, :slots] = motion
        return latent

    def _guided_velocity(self, latent: torch.Tensor, t: torch.Tensor, batch: dict, apg, step: int = 0) -> torch.Tensor:
        audio_scale = self.settings.audio_scale_at(step)
        names = needed_passes(batch["passes"], audio_scale, apg is not None)
        call = lambda group, shortcut=None: self._run_passes(latent, t, batch, group, shortcut)  # noqa: E731
        if self.step_cache is None:
            preds = call(names)
        else:  # each pass runs or reuses what it kept, as its cache state decides
            preds = cached_predictions(self.step_cache, step, t, latent, names, call, self.model)
        return combine(preds, self.settings.text_scale, audio_scale, apg)

    def _run_passes(self, latent: torch.Tensor, t: torch.Tensor, batch: dict, names, shortcut=None) -> dict:
        """{pass: velocity [1, 16, T, h, w]} of the named passes, batched unless batch_guidance is off."""
        passes = batch["passes"]
        index = [passes.index(name) for name in names]
        groups = [index] if self.settings.batch_guidance else [[i] for i in index]
        extra = {} if shortcut is None else {"shortcut": shortcut}
        preds = {}
        with torch.no_grad():
            for group in groups:
                self.hooks.check_interrupt()  # between the passes when they run one by one
                out = self.model(latent.expand(len(group), -1, -1, -1, -1), t.expand(len(group)).to(self.device),
                                 [batch["context"][i] for i in group], batch["clip"], batch["y"],
                                 audio=batch["audio"][group], ref_masks=batch["masks"], routing=self.settings.routing,
                                 active_speakers=[batch["active"][i] for i in group], **extra)
                preds.update({passes[i]: out[j:j + 1] for j, i in enumerate(group)})
        return preds
