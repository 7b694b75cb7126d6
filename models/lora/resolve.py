"""Matching a LoRA's layers against a model: which parameter each term patches, and a report of
what does not fit (layers the model lacks, shapes of another model, adapter kinds not computed).

A T2V LoRA on the I2V model is the common case of a partial fit: its layers are a subset of the
I2V model's, and the few that differ (e.g. a patch-embedding delta for 16 input channels) are
reported and skipped. A LoRA of which nothing fits (another model family or size) is an error.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import nn

from ..errors import CheckpointError
from .file import LoraFile
from .keys import LayerNames


@dataclass
class Term:
    """One LoRA's contribution to one parameter, already times the LoRA's strength.

    delta = strength * (scale * up @ down  +  diff), reshaped to the parameter."""

    strength: float
    up: Optional[torch.Tensor] = None  # [out, rank, ...]
    down: Optional[torch.Tensor] = None  # [rank, in, ...]
    scale: float = 1.0  # alpha / rank, or 1 without alpha
    diff: Optional[torch.Tensor] = None  # full delta


@dataclass
class LoraReport:
    name: str
    strength: float
    patched: list[str] = field(default_factory=list)  # model parameters the LoRA changes
    missing: list[str] = field(default_factory=list)  # file layers the model does not have
    mismatched: list[str] = field(default_factory=list)  # layers whose shapes belong to another model
    unsupported: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        name = self.name.rsplit("/", 1)[-1]
        out = [f"LoRA '{name}' (strength {self.strength:g}): {len(self.patched)} weights patched."]
        if self.missing:
            out.append(f"  {len(self.missing)} layers the model does not have were skipped (e.g. "
                       f"{', '.join(self.missing[:3])}): normal for a T2V LoRA on the I2V model.")
        if self.mismatched:
            out.append(f"  {len(self.mismatched)} layers of another shape were skipped: {'; '.join(self.mismatched[:2])}.")
        if self.unsupported:
            out.append(f"  {len(self.unsupported)} keys of adapter kinds this pack does not compute (LoCon mid, "
                       f"DoRA, LoHa, LoKr, OFT) were ignored: {', '.join(self.unsupported[:2])}.")
        if self.unknown:
            out.append(f"  {len(self.unknown)} keys are no LoRA part and were ignored: {', '.join(self.unknown[:2])}.")
        return out


def parameter_shapes(model: nn.Module) -> dict[str, torch.Size]:
    """Logical shapes of a model's parameters: quantised layers report [out, in], not their bytes."""
    shapes = {}
    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        for pname, param in module.named_parameters(recurse=False):
            shapes[prefix + pname] = param.shape
        if hasattr(module, "in_features") and hasattr(module, "qtype"):
            shapes[prefix + "weight"] = torch.Size((module.out_features, module.in_features))
    return shapes


def _fits(tensor_shape: tuple, target: torch.Size) -> bool:
    squeeze = lambda shape: [d for d in shape if d != 1]  # noqa: E731
    return math.prod(tensor_shape) == math.prod(target) and squeeze(tensor_shape) == squeeze(target)


def _lowrank_fits(up: torch.Tensor, down: torch.Tensor, target: torch.Size) -> bool:
    if up.shape[1] != down.shape[0]:
        return False
    return up.shape[0] == target[0] and math.prod(down.shape[1:]) == math.prod(target[1:])


def resolve(lora: LoraFile, strength: float, shapes: dict[str, torch.Size]) -> tuple[dict[str, Term], LoraReport]:
    """parameter name -> this LoRA's Term, and the report. Raises when nothing fits."""
    owners = {key.rsplit(".", 1)[0] for key in shapes if "." in key}
    names = LayerNames(owners | {k for k in shapes})
    report = LoraReport(lora.name, strength, unsupported=list(lora.unsupported), unknown=list(lora.unknown))
    terms: dict[str, Term] = {}
    for written, parts in lora.layers.items():
        layer = names.resolve(written, lora.diffusers_names)
        if layer is None:
            report.missing.append(names.canonical(written, lora.diffusers_names))
            continue
        weight_key = layer if layer in shapes else f"{layer}.weight"
        found = _weight_term(parts, weight_key, shapes, strength, report)
        if found is not None:
            terms[weight_key] = found
        if "diff_b" in parts:
            bias_key = f"{layer}.bias"
            if bias_key in shapes and _fits(tuple(parts["diff_b"].shape), shapes[bias_key]):
                terms[bias_key] = Term(strength, diff=parts["diff_b"])
            else:
                report.mismatched.append(f"{bias_key}: file {list(parts['diff_b'].shape)}, model "
                                         f"{list(shapes.get(bias_key, []))}")
    report.patched = sorted(terms)
    if not terms:
        raise CheckpointError(_nothing_fits(lora, report))
    return terms, report


def _weight_term(parts: dict, key: str, shapes: dict, strength: float, report: LoraReport) -> Optional[Term]:
    target = shapes.get(key)
    up, down, diff = parts.get("up"), parts.get("down"), parts.get("diff")
    if up is None and diff is None:
        return None
    if target is None:
        report.missing.append(key)
        return None
    if up is not None and not _lowrank_fits(up, down, target):
        report.mismatched.append(f"{key}: file {list(up.shape[:1]) + list(down.shape[1:])}, model {list(target)}")
        up = down = None
    if diff is not None and not _fits(tuple(diff.shape), target):
        report.mismatched.append(f"{key}: file {list(diff.shape)}, model {list(target)}")
        diff = None
    if up is None and diff is None:
        return None
    alpha = parts.get("alpha")
    scale = 1.0 if alpha is None or up is None else float(alpha) / up.shape[1]
    return Term(strength, up=up, down=down, scale=scale, diff=diff)


def _nothing_fits(lora: LoraFile, report: LoraReport) -> str:
    widths = {int(p["up"].shape[0]) for p in lora.layers.values() if "up" in p and p["up"].dim() == 2}
    family = {1536: " It was made for Wan 1.3B (width 1536).", 3072: " It was made for Wan2.2 5B (width 3072)."}
    hint = next((family[w] for w in widths if w in family), "")
    detail = report.mismatched[:2] or report.missing[:3]
    return (f"No layer of the LoRA '{lora.name}' fits this model ({len(report.missing)} layers it lacks, "
            f"{len(report.mismatched)} of other shapes; e.g. {', '.join(detail)}).{hint} Use a LoRA made for "
            "Wan2.1 14B (T2V or I2V).")
