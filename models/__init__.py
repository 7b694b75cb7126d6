"""Pure-torch models of the pack (never imports ComfyUI).

Public entry points are imported lazily so that importing the package stays cheap and
free of side effects.
"""
from __future__ import annotations

from typing import Any

__all__ = ["load_dit", "MultiTalkDiT", "DiTConfig"]


def __getattr__(name: str) -> Any:
    if name == "load_dit":
        from .dit.loading import load_dit

        return load_dit
    if name == "MultiTalkDiT":
        from .dit.model import MultiTalkDiT

        return MultiTalkDiT
    if name == "DiTConfig":
        from .dit.config import DiTConfig

        return DiTConfig
    raise AttributeError(name)
