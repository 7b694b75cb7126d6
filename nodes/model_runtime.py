"""Building and placing the DiT of a MULTITALK_MODEL: LoRAs and run options over the loader's
model (always on a copy sharing its weights), and its loading for a run, through ComfyUI's model
manager inside ComfyUI or by free VRAM outside."""
from __future__ import annotations

from typing import Optional

import torch

from ..models.dit.memory import activation_bytes
from ..models.dit.placement import DiTPlacement
from . import comfy_bridge

DEFAULT_TOKENS = 21 * 30 * 52  # an 81-frame 480p window: 21 latent frames of 30 x 52 tokens


def build_dit(base: torch.nn.Module, loras: tuple, options, work_device: Optional[torch.device]):
    """(DiT, LoRA report lines): `base` with the LoRAs ((LoraFile, strength, mode), ...) applied
    together (fp8 and GGUF weights re-quantised once), then the run options."""
    from ..models.lora import apply_loras

    model, lines = base, []
    for mode in ("merged", "unmerged"):
        chosen = [(lora, strength) for lora, strength, m in loras if m == mode]
        if chosen:
            model, reports = apply_loras(model, chosen, mode, work_device)
            lines += [line for report in reports for line in report.lines()]
    if options is not None:
        model = retune(model, options)[0]
    return model, lines


def retune(model: torch.nn.Module, options) -> tuple[torch.nn.Module, list[str]]:
    """(a copy of `model` sharing its weights, set up to run with `options`; what runs, in lines)."""
    from ..models.dit.runtime import describe_runtime, with_runtime

    tuned = with_runtime(model, options)
    return tuned, describe_runtime(tuned, options.block_swap)


def placement_of(handle) -> DiTPlacement:
    placement = getattr(handle, "_placement", None)
    if placement is None or placement.model is not handle.model:
        swap = handle.options.block_swap if handle.options is not None else "auto"
        placement = DiTPlacement(handle.model, handle.device, comfy_bridge.offload_device(), swap)
        handle._placement = placement
    return placement


def load_for_run(handle, tokens: Optional[int], batch: int, training: bool = False) -> torch.nn.Module:
    """Put the DiT on its device for a run of `batch` items of `tokens` tokens (block swap as needed)."""
    placement = placement_of(handle)
    if training:  # gradients must reach the resident parameters: the whole model on the device
        placement.swap = 0
    tokens = tokens or DEFAULT_TOKENS
    handle._work = (tokens, batch, training)
    needed = activation_bytes(handle.model.config, tokens, batch, handle.model.compute_dtype)
    if not comfy_bridge.load_managed(handle, placement, needed):
        placement.load_for(tokens, batch)
    return handle.model


def ensure_loaded(handle) -> None:
    """Before a step: reload the DiT if a model manager moved it away since the run began."""
    placement = getattr(handle, "_placement", None)
    if placement is not None and placement.misplaced():
        load_for_run(handle, *getattr(handle, "_work", (None, 1, False)))


def release(handle) -> None:
    placement = getattr(handle, "_placement", None)
    if handle.offload and handle.device.type != "cpu":
        if placement is not None:
            placement.unload()
        else:
            handle.model.to(comfy_bridge.offload_device())
