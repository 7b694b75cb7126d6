"""ComfyUI-MultiTalk: audio-driven multi-person talking video (MultiTalk / InfiniteTalk).

ComfyUI imports this folder under whatever name it has in custom_nodes/; the same tree
installs as the Python package `comfyui_multitalk`. Only relative imports are used.
The node mappings load on first access, so light entry points (the HTTP client) never
import torch.
"""
from typing import Any

WEB_DIRECTORY = "./web"

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]


def __getattr__(name: str) -> Any:
    if name in ("NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"):
        from . import nodes

        return getattr(nodes, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
