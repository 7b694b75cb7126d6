"""Regional compilation: torch.compile of the transformer block, one compiled graph for all 40.

Every block has the same code and shapes, and PyTorch (2.5+) passes a module's parameters to the
compiled graph as inputs rather than baking them in, so the first block compiles and the others
reuse its code. The guards depend only on shapes, dtypes and the routing structure, which stay the
same from window to window, so a long video compiles once per kind of pass (e.g. one speaker,
two speakers) and never per window or per step. Compiled and eager blocks agree within float
rounding (the compiler fuses and reorders elementwise work).
"""
from __future__ import annotations

import logging
from typing import Optional

from torch import nn

log = logging.getLogger(__name__)


def compile_blocks(model: nn.Module, backend: str = "inductor", mode: Optional[str] = None,
                   dynamic: Optional[bool] = False) -> int:
    """Compile each block's forward in place (modules of `model` only); returns how many.

    dynamic=False: shapes are static per window kind, so static graphs are the fastest; a new
    batch size (e.g. sequential guidance) compiles one more graph.
    """
    for block in model.blocks:
        block.compile(backend=backend, mode=mode, dynamic=dynamic)
    log.info("compiled the %d transformer blocks (%s)", len(model.blocks), backend)
    return len(model.blocks)


def uncompile_blocks(model: nn.Module) -> None:
    for block in model.blocks:
        block._compiled_call_impl = None


def is_compiled(model: nn.Module) -> bool:
    return any(getattr(block, "_compiled_call_impl", None) is not None for block in model.blocks)
