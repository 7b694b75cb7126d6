"""Training the audio adapter on a frozen backbone with the flow-matching loss (see flow.py).

Per optimizer step: grad_accumulation micro-batches, each a draw of windows (tasks: talking,
image-to-video with zero audio, continuation windows), flow times and noise from one seeded
generator; gradients clipped to max_grad_norm; AdamW (or 8-bit AdamW) with a linear warm-up;
an optional EMA; CSV / TensorBoard logs; a validation loss on held-out clips. The resume state
(weights, optimizer, EMA, step, generator, losses) continues a run exactly.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch

from ..errors import GenerationInputError
from ..output_files import check_output
from .adapter_params import TrainableAdapter, checkpointed_blocks
from .batches import BatchPlanner, TaskMix, TrainBatch
from .cache import MANIFEST, TrainingCache, check_model_fits
from .checkpoints import (adapter_paths, check_adapter_outputs, check_writable, ema_path, load_resume_state,
                          save_adapter, save_resume_state, step_path)
from .distributed import (ProcessGroupInfo, barrier, current_group, full_tensor, load_optimizer_state,
                          mean_over_processes, optimizer_state, shard_modules)
from .flow import (FlowDraw, clean_motion_slots, draw_flow, loss_weights, masked_mse, noised_latents,
                   shifted_timesteps, velocity_target)
from .optim import AdapterEMA, build_optimizer, clip_gradients, learning_rate, resolve_optimizer, set_learning_rate
from .preview import preview_path, render_preview
from .settings import AUTOCAST_CHOICES, TrainSettings
from .train_log import TrainLog
from .validation import split_validation, validation_loss

__all__ = ["AUTOCAST_CHOICES", "AdapterTrainer", "TrainHooks", "TrainResult", "TrainSettings", "flow_matching_loss",
           "shifted_timesteps"]


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
    grad_norms: list[float] = field(default_factory=list)  # this call's steps, before clipping
    val_losses: list[tuple[int, float]] = field(default_factory=list)  # (step, validation loss)
    log_path: str = ""
    previews: list[str] = field(default_factory=list)  # preview clips written by this call


def flow_matching_loss(model: torch.nn.Module, batch: TrainBatch, draw: FlowDraw, autocast: bool) -> torch.Tensor:
    """MSE between the model's velocity at x_t and noise - x0, over the slots the sampler does not
    overwrite (continuations leave their known slots out)."""
    device = model.patch_embedding.weight.device
    x0, noise = batch.latents.to(device), draw.noise.to(device)
    noisy = clean_motion_slots(noised_latents(x0, noise, draw.sigma), x0, batch.clean_slots)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
        velocity = model(noisy, (draw.sigma * 1000).to(device), [c.to(device) for c in batch.context],
                         batch.clip.to(device), batch.y.to(device), audio=batch.audio.to(device),
                         ref_masks=batch.masks.to(device), routing="lrope", active_speakers=batch.active)
    weights = loss_weights(x0.shape, batch.known_slots, device)
    return masked_mse(velocity, velocity_target(x0, noise), weights)


class AdapterTrainer:
    """Trains `model`'s audio layers on `cache`, writing `output` (+ .resume.pt, + _stepN files, + logs).

    Under torchrun (a process group already joined, see distributed.py) every process runs this
    with the same settings; the adapter is sharded and process 0 writes the files."""

    def __init__(self, model: torch.nn.Module, cache: TrainingCache, settings: TrainSettings, output: str,
                 hooks: Optional[TrainHooks] = None, group: Optional[ProcessGroupInfo] = None, vae: Any = None):
        settings.validate()
        if settings.preview_every and vae is None:
            raise GenerationInputError(f"preview_every is {settings.preview_every} but no VAE was given: connect the "
                                       "VAE (it decodes the preview clips) or set preview_every to 0.")
        self.vae = vae
        check_model_fits(cache, model.config)
        self.model, self.settings = model, settings
        self.group = group or current_group()
        self.adapter_path, self.resume_path = adapter_paths(os.path.expanduser(output))
        self.hooks = hooks or TrainHooks()
        self.autocast = self._autocast()
        self.cache, self.held_out = split_validation(cache, settings.validation_windows)
        if self.group.is_main:
            check_writable(self.adapter_path)

    def _autocast(self) -> bool:
        sixteen_bit = self.model.compute_dtype != torch.float32
        if self.settings.autocast == "off" and sixteen_bit:
            raise GenerationInputError(f"The model computes in {self.model.compute_dtype}; the fp32 adapter weights "
                                       "need autocast: set autocast to auto or bf16 (or load the model in fp32).")
        return self.settings.autocast == "bf16" or (self.settings.autocast == "auto" and sixteen_bit)

    def _task_notes(self) -> list[str]:
        mode = self.settings.continuation_mode
        if self.settings.continuation_share > 0 and not any(w.motion_frames(mode) for w in self.cache.windows):
            return [f"No window of '{self.cache.folder}' holds a {mode} continuation (prepared by an older version, "
                    "or windows too short): every window trains from its first frame. Prepare the cache again to "
                    "train continuations."]
        return []

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
        with TrainableAdapter(self.model, settings.fresh_audio_layers) as adapter, \
                checkpointed_blocks(self.model, settings.gradient_checkpointing, settings.offload_activations):
            shard_modules(adapter.modules(), self.group)
            params = [p for _, p in adapter.named_parameters()]
            kind = resolve_optimizer(settings.optimizer, adapter.device, self.group.world)
            optimizer = build_optimizer(params, settings, kind)
            ema = AdapterEMA(params, settings.ema_decay) if settings.ema_decay else None
            step, losses, notes = 0, [], self._task_notes() + [f"Optimizer: {kind}."]
            if resuming:
                step, losses, resumed = self._restore(adapter, optimizer, ema, generator)
                notes += resumed
            result = TrainResult(self.adapter_path, self.resume_path, losses, step, notes)
            log = TrainLog(self.adapter_path, step, settings.tensorboard, enabled=self.group.is_main)
            result.log_path = log.csv_path
            try:
                self._loop(adapter, optimizer, ema, generator, result, log)
            finally:
                log.close()
        return result

    def _loop(self, adapter, optimizer, ema, generator, result: TrainResult, log: TrainLog) -> None:
        settings, step = self.settings, result.start_step
        if step:
            self.hooks.progress(step, f"resumed at step {step}/{settings.steps}")
        mix = TaskMix(settings.zero_audio_share, settings.compose_share, settings.continuation_share,
                      settings.continuation_mode)
        planner = BatchPlanner(self.cache, settings.batch_size * self.group.world, 0.0, 0.0,
                               self.model.config.text_len, generator, mix=mix)
        params = [p for _, p in adapter.named_parameters()]
        while step < settings.steps:
            self._interruptible(adapter, optimizer, ema, generator, step, result.losses)
            started = time.perf_counter()
            loss, norm = self._step(planner, optimizer, params, generator, step)
            if ema is not None:
                ema.update()
            step += 1
            result.losses.append(loss)
            result.grad_norms.append(norm)
            val = self._validation(step)
            if val is not None:
                result.val_losses.append((step, val))
            log.write(step, loss, norm, learning_rate(settings, step - 1), time.perf_counter() - started, val)
            self._preview(step, result)
            recent = result.losses[-10:]
            self.hooks.progress(1, f"step {step}/{settings.steps} loss {sum(recent) / len(recent):.4f}")
            if settings.save_every and step % settings.save_every == 0 and step < settings.steps:
                self._save(adapter, optimizer, ema, generator, step, result.losses, step_path(self.adapter_path, step))
        self._save(adapter, optimizer, ema, generator, step, result.losses, self.adapter_path)

    def _loss(self, batch: TrainBatch, draw: FlowDraw) -> torch.Tensor:
        return flow_matching_loss(self.model, batch, draw, self.autocast)

    def _step(self, planner: BatchPlanner, optimizer, params, generator, step: int) -> tuple[float, float]:
        settings, part = self.settings, self.group.part(self.settings.batch_size)
        set_learning_rate(optimizer, learning_rate(settings, step))
        optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for _ in range(settings.grad_accumulation):
            batch = planner.next_batch(part)
            shape = (settings.batch_size * self.group.world, *batch.latents.shape[1:])
            loss = self._loss(batch, draw_flow(shape, generator, settings.shift).slice(part.start, part.stop))
            (loss / settings.grad_accumulation).backward()
            total += float(loss.detach())
        norm = clip_gradients(params, settings.max_grad_norm)
        optimizer.step()
        return mean_over_processes(total / settings.grad_accumulation, self.group), norm

    def _validation(self, step: int) -> Optional[float]:
        settings = self.settings
        if not self.held_out.windows or (step % settings.validation_every and step != settings.steps):
            return None
        return validation_loss(self._loss, self.held_out, self.model.config.text_len, settings.shift)

    def _preview(self, step: int, result: TrainResult) -> None:
        if not self.settings.preview_every or step % self.settings.preview_every:
            return
        window = (self.held_out.windows or self.cache.windows)[0]
        path = check_output(preview_path(self.adapter_path, step), overwrite=True, kind=None)
        render_preview(self.model, self.vae, window, self.settings.preview_steps, self.settings.shift, self.autocast,
                       path, write=self.group.is_main)
        result.previews.append(path)

    def _interruptible(self, adapter, optimizer, ema, generator, step: int, losses: list[float]) -> None:
        """Check for a cancel; on one, keep the progress in a resume state first."""
        try:
            self.hooks.check_interrupt()
        except BaseException:
            if step:
                self._save(adapter, optimizer, ema, generator, step, losses, None)
            raise

    def _save(self, adapter: TrainableAdapter, optimizer, ema: Optional[AdapterEMA], generator, step: int,
              losses: list[float], adapter_file: Optional[str]) -> None:
        """Write the adapter (and its EMA) and the resume state; collective under torchrun, process 0 writes."""
        state = adapter.state_dict()
        optim = optimizer_state(self.model, optimizer)
        names = [k for k, _ in adapter.named_parameters()]
        averaged = {k: full_tensor(t).float().cpu() for k, t in zip(names, ema.state())} if ema else None
        if self.group.is_main:
            if adapter_file is not None:
                meta = self._metadata(step)
                save_adapter(adapter_file, state, self.settings.save_dtype, meta)
                if averaged is not None:
                    save_adapter(ema_path(adapter_file), averaged, self.settings.save_dtype,
                                 {**meta, "multitalk.ema_decay": self.settings.ema_decay})
            save_resume_state(self.resume_path, {
                "step": step, "losses": list(losses), "params": state, "optimizer": optim,
                "ema": averaged, "ema_updates": ema.updates if ema else 0,
                "generator": generator.get_state(), "settings": self._settings_record()})
        barrier(self.group)

    def _metadata(self, step: int) -> dict:
        config = self.model.config
        return {"multitalk.num_heads": config.num_heads, "multitalk.text_len": config.text_len,
                "multitalk.trained_steps": step, "multitalk.training_cache": self.cache.folder}

    def _settings_record(self) -> dict:
        return {**self.settings.__dict__, "processes": self.group.world}

    def _restore(self, adapter: TrainableAdapter, optimizer, ema, generator) -> tuple[int, list[float], list[str]]:
        state = load_resume_state(self.resume_path)
        adapter.load_state_dict(state["params"])
        load_optimizer_state(self.model, optimizer, state["optimizer"], self.group)
        if ema is not None and state.get("ema"):
            ema.load([state["ema"][k] for k, _ in adapter.named_parameters()], int(state.get("ema_updates", 0)))
        generator.set_state(state["generator"])
        current = self._settings_record()
        changed = [f"{k} {v} -> {current[k]}" for k, v in state.get("settings", {}).items()
                   if k not in ("steps", "save_every") and k in current and current[k] != v]
        notes = [f"Resumed from step {state['step']} ('{self.resume_path}')."]
        if changed:
            notes.append("Settings changed since the saved run: " + ", ".join(changed) + ".")
        return int(state["step"]), [float(x) for x in state["losses"]], notes
