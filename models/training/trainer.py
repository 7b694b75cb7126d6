"""Training the audio adapter on a frozen backbone with the flow-matching loss.

Per micro-batch: u ~ U(0, 1), t = s*u / (1 + (s-1)*u) (the sampler's shift), x_t = (1 - t) x0
+ t noise, target v = noise - x0, loss = MSE(model(x_t, 1000 t, ...), v). AdamW with a linear
warm-up to the learning rate, gradient accumulation, optional block checkpointing and bf16
autocast. One torch.Generator drives every random draw, so a seed fixes the losses and a
resume state continues them exactly.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

import torch
import torch.nn.functional as F

from ..errors import GenerationInputError
from .adapter_params import TrainableAdapter, checkpointed_blocks
from .batches import BatchPlanner, TrainBatch
from .cache import MANIFEST, TrainingCache, check_model_fits
from .checkpoints import (adapter_paths, check_adapter_outputs, load_resume_state, save_adapter, save_resume_state,
                          step_path)

AUTOCAST_CHOICES = ("auto", "bf16", "off")


@dataclass
class TrainSettings:
    steps: int = 2000  # optimizer steps (each: grad_accumulation micro-batches)
    learning_rate: float = 2e-5
    warmup_steps: int = 100
    batch_size: int = 1
    grad_accumulation: int = 1
    weight_decay: float = 0.01
    zero_audio_share: float = 0.1  # share of samples trained as plain image-to-video (zeroed audio)
    compose_share: float = 0.0  # share of one-speaker batches joined side by side into two speakers
    shift: float = 5.0  # timestep shift (the sampler uses 7 at 480p)
    seed: int = 0
    gradient_checkpointing: bool = True
    autocast: str = "auto"  # auto: bf16 when the model computes in 16 bits; bf16; off
    save_every: int = 500  # 0: only at the end
    save_dtype: str = "bf16"
    fresh_audio_layers: bool = False  # start from new audio layers instead of the model's own

    def validate(self) -> None:
        checks = [(self.steps >= 1, "steps must be >= 1"), (self.learning_rate > 0, "learning_rate must be > 0"),
                  (self.batch_size >= 1 and self.grad_accumulation >= 1, "batch_size and grad_accumulation >= 1"),
                  (0 <= self.zero_audio_share <= 1 and 0 <= self.compose_share <= 1, "shares must be in 0..1"),
                  (self.shift > 0, "shift must be > 0"), (self.autocast in AUTOCAST_CHOICES, "unknown autocast"),
                  (self.warmup_steps >= 0 and self.save_every >= 0, "warmup_steps and save_every must be >= 0")]
        for ok, message in checks:
            if not ok:
                raise GenerationInputError(f"Training settings: {message} (got {asdict(self)}).")


@dataclass
class TrainHooks:
    progress: Callable[[int, str], None] = lambda n, message: None
    check_interrupt: Callable[[], None] = lambda: None


@dataclass
class TrainResult:
    adapter_path: str
    resume_path: str
    losses: list[float]  # one per optimizer step since the start of the run (resumed runs included)
    start_step: int  # the step this call started from (0, or where a resume state left off)
    notes: list[str] = field(default_factory=list)


def shifted_timesteps(u: torch.Tensor, shift: float) -> torch.Tensor:
    """Uniform u in [0, 1) -> flow time t in [0, 1) with the sampler's shift formula."""
    return shift * u / (1 + (shift - 1) * u)


def flow_matching_loss(model: torch.nn.Module, batch: TrainBatch, generator: torch.Generator, shift: float,
                       autocast: bool) -> torch.Tensor:
    device = model.patch_embedding.weight.device
    x0 = batch.latents.to(device)
    t = shifted_timesteps(torch.rand(x0.shape[0], generator=generator), shift)  # [B]
    noise = torch.randn(x0.shape, generator=generator).to(device)
    level = t.to(device).view(-1, 1, 1, 1, 1)
    noisy = (1 - level) * x0 + level * noise
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
        velocity = model(noisy, (t * 1000).to(device), [c.to(device) for c in batch.context], batch.clip.to(device),
                         batch.y.to(device), audio=batch.audio.to(device), ref_masks=batch.masks.to(device),
                         routing="lrope", active_speakers=batch.active)
    return F.mse_loss(velocity.float(), (noise - x0).float())


class AdapterTrainer:
    """Trains `model`'s audio layers on `cache`, writing `output` (+ .resume.pt, + _stepN files)."""

    def __init__(self, model: torch.nn.Module, cache: TrainingCache, settings: TrainSettings, output: str,
                 hooks: Optional[TrainHooks] = None):
        settings.validate()
        check_model_fits(cache, model.config)
        self.model, self.cache, self.settings = model, cache, settings
        self.adapter_path, self.resume_path = adapter_paths(os.path.expanduser(output))
        self.hooks = hooks or TrainHooks()
        self.autocast = self._autocast()

    def _autocast(self) -> bool:
        sixteen_bit = self.model.compute_dtype != torch.float32
        if self.settings.autocast == "off" and sixteen_bit:
            raise GenerationInputError(f"The model computes in {self.model.compute_dtype}; the fp32 adapter weights "
                                       "need autocast: set autocast to auto or bf16 (or load the model in fp32).")
        return self.settings.autocast == "bf16" or (self.settings.autocast == "auto" and sixteen_bit)

    def run(self, resume: bool = True) -> TrainResult:
        """Train up to settings.steps (continuing a resume state when `resume` and one exists).

        Works under torch.inference_mode() too (ComfyUI runs nodes in it): everything here runs
        with inference mode off and autograd on."""
        with torch.inference_mode(False), torch.enable_grad():
            return self._run(resume)

    def _run(self, resume: bool) -> TrainResult:
        settings = self.settings
        resuming = resume and os.path.isfile(self.resume_path)
        cache_files = [w.path for w in self.cache.windows] + [os.path.join(self.cache.folder, MANIFEST)]
        check_adapter_outputs(self.adapter_path, resuming, also_reads=cache_files)  # before any step
        generator = torch.Generator().manual_seed(int(settings.seed))
        adapter_context = TrainableAdapter(self.model, settings.fresh_audio_layers)
        with adapter_context as adapter, checkpointed_blocks(self.model, settings.gradient_checkpointing):
            params = [p for _, p in adapter.named_parameters()]
            optimizer = torch.optim.AdamW(params, lr=settings.learning_rate, weight_decay=settings.weight_decay)
            step, losses, notes = 0, [], []
            if resuming:
                step, losses, notes = self._restore(adapter, optimizer, generator)
            start = step
            if start:
                self.hooks.progress(start, f"resumed at step {start}/{settings.steps}")
            planner = BatchPlanner(self.cache, settings.batch_size, settings.zero_audio_share,
                                   settings.compose_share, self.model.config.text_len, generator)
            while step < settings.steps:
                self._interruptible(adapter, optimizer, generator, step, losses)
                losses.append(self._step(planner, optimizer, generator, step))
                step += 1
                recent = losses[-10:]
                self.hooks.progress(1, f"step {step}/{settings.steps} loss {sum(recent) / len(recent):.4f}")
                if settings.save_every and step % settings.save_every == 0 and step < settings.steps:
                    self._save(adapter, optimizer, generator, step, losses, step_path(self.adapter_path, step))
            self._save(adapter, optimizer, generator, step, losses, self.adapter_path)
        return TrainResult(self.adapter_path, self.resume_path, losses, start, notes)

    def _step(self, planner: BatchPlanner, optimizer: torch.optim.Optimizer, generator, step: int) -> float:
        settings = self.settings
        warmup = min(1.0, (step + 1) / settings.warmup_steps) if settings.warmup_steps else 1.0
        for group in optimizer.param_groups:
            group["lr"] = settings.learning_rate * warmup
        optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for _ in range(settings.grad_accumulation):
            loss = flow_matching_loss(self.model, planner.next_batch(), generator, settings.shift, self.autocast)
            (loss / settings.grad_accumulation).backward()
            total += float(loss.detach())
        optimizer.step()
        return total / settings.grad_accumulation

    def _interruptible(self, adapter, optimizer, generator, step: int, losses: list[float]) -> None:
        """Check for a cancel; on one, keep the progress in a resume state first."""
        try:
            self.hooks.check_interrupt()
        except BaseException:
            if step:
                self._save(adapter, optimizer, generator, step, losses, None)
            raise

    def _save(self, adapter: TrainableAdapter, optimizer, generator, step: int, losses: list[float],
              adapter_file: Optional[str]) -> None:
        state = adapter.state_dict()
        if adapter_file is not None:
            config = self.model.config
            save_adapter(adapter_file, state, self.settings.save_dtype,
                         {"multitalk.num_heads": config.num_heads, "multitalk.text_len": config.text_len,
                          "multitalk.trained_steps": step, "multitalk.training_cache": self.cache.folder})
        save_resume_state(self.resume_path, {
            "step": step, "losses": list(losses), "params": state, "optimizer": optimizer.state_dict(),
            "generator": generator.get_state(), "settings": asdict(self.settings)})

    def _restore(self, adapter: TrainableAdapter, optimizer, generator) -> tuple[int, list[float], list[str]]:
        state = load_resume_state(self.resume_path)
        adapter.load_state_dict(state["params"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        changed = [f"{k} {v} -> {getattr(self.settings, k)}" for k, v in state.get("settings", {}).items()
                   if k not in ("steps", "save_every") and getattr(self.settings, k, v) != v]
        notes = [f"Resumed from step {state['step']} ('{self.resume_path}')."]
        if changed:
            notes.append("Settings changed since the saved run: " + ", ".join(changed) + ".")
        return int(state["step"]), [float(x) for x in state["losses"]], notes
