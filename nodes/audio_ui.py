"""What the audio node shows in ComfyUI: the who-speaks-when picture, the mixed soundtrack to
play over it and where time runs on the picture, for web/js/multitalk_timeline.js. Every entry
is a list, as ComfyUI's UI outputs are; outside ComfyUI no files are written."""
from __future__ import annotations

import os
import uuid

import numpy as np
import torch

from ..models.audio.timeline_image import timeline_geometry
from ..models.output_files import check_output
from . import comfy_bridge

TIMELINE_KEY = "multitalk_timeline"
SOUNDTRACK_KEY = "multitalk_soundtrack"
GEOMETRY_KEY = "multitalk_timeline_geometry"


def save_temp_audio(audio: dict, prefix: str = "multitalk") -> list[dict]:
    """Save AUDIO as a 16-bit WAV in ComfyUI's temp folder: [{filename, subfolder, type}]."""
    folder = comfy_bridge.temp_directory()
    if folder is None:
        return []
    import soundfile

    os.makedirs(folder, exist_ok=True)
    path = check_output(os.path.join(folder, f"{prefix}_{uuid.uuid4().hex[:12]}.wav"), overwrite=False, kind=None)
    waveform = audio["waveform"][0].detach().float().cpu().numpy().T  # [samples, channels]
    soundfile.write(path, np.clip(waveform, -1.0, 1.0), int(audio["sample_rate"]), subtype="PCM_16")
    return [{"filename": os.path.basename(path), "subfolder": "", "type": "temp"}]


def timeline_ui(picture: torch.Tensor, mixed: dict, frames: int, fps: float) -> dict:
    geometry = timeline_geometry(frames, fps, int(picture.shape[2]))
    return {TIMELINE_KEY: comfy_bridge.save_temp_images(picture, prefix="multitalk_timeline"),
            SOUNDTRACK_KEY: save_temp_audio(mixed, prefix="multitalk_soundtrack"), GEOMETRY_KEY: [geometry]}
