"""Applying LoRAs to a DiT: a new model that shares the base weights, the input left untouched.

Modes:
- "merged": every patched weight becomes W + delta (see merge.py): no cost per step; the patched
  layers take memory once more while both models are alive.
- "unmerged": the transformer blocks' linear layers add their low-rank update at compute time
  (see layers.py): no copy of the big weights, a little compute per step, and a new strength
  re-applies in a moment. Parameters outside the blocks' linears (norms, modulation, biases'
  `.diff_b`, embeddings, head: about 3% of the weights) are merged in both modes.
"""
from __future__ import annotations

import re
from typing import Optional, Sequence

import torch
from torch import nn

from ..errors import CheckpointError
from .clone import share_clone
from .file import LoraFile
from .layers import add_lora, is_linear
from .merge import merge_parameter, term_delta
from .resolve import LoraReport, Term, parameter_shapes, resolve

MODES = ("merged", "unmerged")
_BLOCK_LINEAR = re.compile(r"^blocks\.\d+\.")


def apply_loras(model: nn.Module, loras: Sequence[tuple[LoraFile, float]], mode: str = "merged",
                work_device: Optional[torch.device] = None) -> tuple[nn.Module, list[LoraReport]]:
    """A patched copy of `model` and one report per LoRA.

    Args:
        loras: (LoRA, strength) pairs, applied together (their deltas add up).
        mode: "merged" or "unmerged" (see the module docstring).
        work_device: where merges are computed (e.g. the GPU); results stay where each weight lives.
    """
    if mode not in MODES:
        raise CheckpointError(f"Unknown LoRA mode '{mode}': choose merged or unmerged.")
    shapes = parameter_shapes(model)
    per_param: dict[str, list[Term]] = {}
    reports = []
    for lora, strength in loras:
        terms, report = resolve(lora, float(strength), shapes)
        reports.append(report)
        for key, term in terms.items():
            per_param.setdefault(key, []).append(term)
    patched = share_clone(model)
    modules = dict(patched.named_modules())
    low_rank: dict[str, dict[str, list[Term]]] = {}
    for key, terms in per_param.items():
        owner, name = key.rsplit(".", 1)
        module = modules[owner]
        if mode == "unmerged" and _BLOCK_LINEAR.match(key) and is_linear(module) and name in ("weight", "bias"):
            low_rank.setdefault(owner, {})[name] = terms
        else:
            merge_parameter(module, name, [t for t in terms if t.strength != 0], work_device)
    for owner, parts in low_rank.items():
        _attach(modules[owner], parts.get("weight", []), parts.get("bias", []))
    patched.lora_reports = reports
    return patched, reports


def _attach(module: nn.Module, weight_terms: list[Term], bias_terms: list[Term]) -> None:
    """Hold the low-rank terms on the layer (compute dtype, its device); full deltas summed."""
    dtype = module.bias.dtype if getattr(module, "bias", None) is not None else torch.get_default_dtype()
    if isinstance(module, nn.Linear) and module.weight.is_floating_point():
        dtype = module.weight.dtype
    device = module.bias.device if getattr(module, "bias", None) is not None else module.weight.device
    ranked = [t for t in weight_terms if t.up is not None and t.strength != 0]
    down = up = diff = diff_b = None
    if ranked:
        down = torch.cat([t.down.flatten(1).float() for t in ranked]).to(device, dtype)  # [R, in]
        up = torch.cat([t.up.flatten(1).float() * (t.strength * t.scale) for t in ranked], dim=1).to(device, dtype)
    shape = torch.Size((module.out_features, module.in_features))
    full = [Term(t.strength, diff=t.diff) for t in weight_terms if t.diff is not None and t.strength != 0]
    if full:
        diff = term_delta(full, shape, device).to(dtype)
    if bias_terms:
        diff_b = term_delta(bias_terms, torch.Size((module.out_features,)), device).to(dtype)
    add_lora(module, down, up, diff, diff_b)
