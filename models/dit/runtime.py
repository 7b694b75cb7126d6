"""How a DiT runs, chosen per model and never changing its weights: block swap, guidance
batching, regional compile, fp8 products and the attention kernel, applied to a copy that
shares the weights (the input model is left as it was), and described for the user."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from torch import nn

from ..errors import GenerationInputError
from ..lora.clone import share_clone
from ..weights.fp8 import Fp8Linear, fp8_matmul_supported, set_fp8_matmul
from .batching import POLICIES
from .compile import compile_blocks, is_compiled, uncompile_blocks
from .residency import swap_count


@dataclass(frozen=True)
class RuntimeOptions:
    block_swap: Union[str, int] = "auto"  # "auto" (as memory requires) or a block count (0 = off)
    guidance_batch: str = "auto"  # "auto" | "batched" | "sequential"
    compile: bool = False
    fp8_matmul: bool = False  # fp8 x fp8 products for fp8 weights (an approximation; see weights/fp8.py)
    attention: str = "keep"  # "keep" the model's, or a backend name


def with_runtime(model: nn.Module, options: RuntimeOptions) -> nn.Module:
    """A copy of `model` (sharing its weights) set up to run with `options`."""
    if options.guidance_batch not in POLICIES:
        raise GenerationInputError(f"Unknown guidance batching '{options.guidance_batch}': choose "
                                   f"{', '.join(POLICIES)}.")
    copy = share_clone(model)
    copy.block_runner = None
    copy.batch_policy = options.guidance_batch
    set_fp8_matmul(copy, options.fp8_matmul)
    if options.attention != "keep":
        copy.set_attention(options.attention)
    if options.compile:
        compile_blocks(copy)
    else:
        uncompile_blocks(copy)
    return copy


def describe_runtime(model: nn.Module, swap_setting: Union[str, int, None] = None) -> list[str]:
    """One line per setting in force, for the node's notes and logs (`swap_setting`: the block swap
    asked for, when the model is not placed yet)."""
    device = model.patch_embedding.weight.device
    fp8_layers = [m for m in model.modules() if isinstance(m, Fp8Linear)]
    lines = [f"attention: {getattr(model, 'attention_name', 'sdpa')}",
             f"guidance passes: {getattr(model, 'batch_policy', 'batched')}",
             _swap_line(model, swap_setting),
             f"compiled blocks: {'yes' if is_compiled(model) else 'no'}"]
    if fp8_layers:
        wanted = any(m.fp8_matmul for m in fp8_layers)
        if not wanted:
            lines.append("fp8 weights: dequantised to bf16 for each product (exact to the weights)")
        elif fp8_matmul_supported(device):
            lines.append("fp8 weights: fp8 x fp8 products (activations rounded to fp8: an approximation)")
        else:
            lines.append(f"fp8 weights: fp8 products are not available on {device}; dequantised to bf16")
    return lines


def _swap_line(model: nn.Module, setting: Union[str, int, None]) -> str:
    blocks = len(model.blocks)
    if setting == "auto":
        return f"block swap: auto (at each run, as many of the {blocks} blocks as VRAM requires stream from CPU memory)"
    count = swap_count(model) if setting is None else int(setting)
    return f"block swap: {count} of {blocks} blocks streamed from CPU memory"
