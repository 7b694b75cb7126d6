"""The sampler's progress inside ComfyUI (ComfyUI's modules stood in): one bar whose updates
carry ComfyUI's latent preview of the window's middle frame, made with ComfyUI's Wan 2.1
latent format, and the progress text sent to the browser for the node's title bar."""
from __future__ import annotations

import sys
import types

import torch

from comfyui_multitalk.models.sampling.generate import Hooks
from comfyui_multitalk.nodes.sampler_progress import attach_progress


def fake_comfyui(monkeypatch, preview_method_on: bool = True) -> dict:
    seen = {"bar": [], "previewed": [], "sent": []}

    class Wan21:
        latent_channels = 16

    class Previewer:
        def decode_latent_to_preview_image(self, fmt, latent):
            seen["previewed"].append((fmt, tuple(latent.shape), float(latent.mean())))
            return ("JPEG", "picture", 512)

    class ProgressBar:
        def __init__(self, total, node_id=None):
            self.total = total

        def update_absolute(self, value, total=None, preview=None):
            seen["bar"].append((value, total, preview))

    server = types.SimpleNamespace(send_sync=lambda event, data, sid: seen["sent"].append((event, data, sid)),
                                   client_id="browser-1", last_node_id="30")
    modules = {
        "comfy": types.ModuleType("comfy"),
        "comfy.utils": types.SimpleNamespace(ProgressBar=ProgressBar),
        "comfy.latent_formats": types.SimpleNamespace(Wan21=Wan21),
        "comfy.model_management": types.SimpleNamespace(get_torch_device=lambda: torch.device("cpu")),
        "latent_preview": types.SimpleNamespace(get_previewer=lambda device, fmt: (
            Previewer() if preview_method_on and isinstance(fmt, Wan21) else None)),
        "server": types.SimpleNamespace(PromptServer=types.SimpleNamespace(instance=server)),
    }
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    return seen


def test_each_step_sends_a_preview_of_the_middle_frame_and_the_window_text(monkeypatch):
    seen = fake_comfyui(monkeypatch)
    hooks = Hooks()
    attach_progress(hooks, total_units=4)
    latent = torch.zeros(1, 16, 5, 4, 6)
    latent[:, :, 2] = 7.0  # the middle latent frame; frame 0 is the known frame
    hooks.on_step(latent, 0, 0)
    hooks.progress(1, "window 1/2, step 1/2")
    hooks.progress(1, "window 1/2, decoding")
    assert seen["previewed"] == [("JPEG", (1, 16, 1, 4, 6), 7.0)]
    assert seen["bar"] == [(1, 4, ("JPEG", "picture", 512)), (2, 4, None)]  # the preview goes once
    assert seen["sent"][0] == ("multitalk.progress", {"node": "30", "text": "window 1/2, step 1/2", "value": 1,
                                                      "max": 4}, "browser-1")


def test_no_previews_when_comfyuis_preview_setting_is_off(monkeypatch):
    seen = fake_comfyui(monkeypatch, preview_method_on=False)
    hooks = Hooks()
    attach_progress(hooks, total_units=2)
    assert hooks.on_step is None
    hooks.progress(1, "window 1/1, step 1/2")
    assert seen["bar"] == [(1, 2, None)] and seen["previewed"] == []
