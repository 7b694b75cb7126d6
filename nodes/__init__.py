"""ComfyUI node classes of the pack, collected from one module per topic."""
from __future__ import annotations

from importlib import import_module

# One module per topic; each defines NODE_CLASS_MAPPINGS and NODE_DISPLAY_NAME_MAPPINGS.
_NODE_MODULES = (
    "model_nodes",
    "lora_nodes",
    "speed_nodes",
    "audio_nodes",
    "speaker_nodes",
    "encoder_nodes",
    "sampler_nodes",
    "sampler_options",
    "training_nodes",
    "dubbing_nodes",
    "timeline_nodes",
)


def collect_mappings() -> tuple[dict, dict]:
    classes: dict = {}
    names: dict = {}
    for module_name in _NODE_MODULES:
        module = import_module(f".{module_name}", __name__)
        classes.update(module.NODE_CLASS_MAPPINGS)
        names.update(module.NODE_DISPLAY_NAME_MAPPINGS)
    return classes, names


NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = collect_mappings()


def _register_routes() -> None:
    """The pack's HTTP routes on ComfyUI's server (the speaker editor's); nothing outside ComfyUI."""
    from . import comfy_bridge, speaker_routes

    comfy_bridge.register_routes(speaker_routes.register)


_register_routes()
