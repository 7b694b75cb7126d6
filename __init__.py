"""ComfyUI-MultiTalk: audio-driven multi-person talking video (MultiTalk / InfiniteTalk).

ComfyUI imports this folder under whatever name it has in custom_nodes/; the same tree
installs as the Python package `comfyui_multitalk`. Only relative imports are used.
"""
from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

WEB_DIRECTORY = "./web"

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
