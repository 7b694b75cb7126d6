"""`--models-dir`: find the model files a workflow names in a ComfyUI-style models folder,
so the shipped workflows run unchanged against an existing ComfyUI install."""
from __future__ import annotations

import copy
import os

# (loader class, input) -> the models/ subfolders ComfyUI would search, in order.
MODEL_FOLDERS = {
    ("MultiTalkModelLoader", "model"): ("diffusion_models",),
    ("MultiTalkModelLoader", "audio_weights"): ("model_patches", "diffusion_models"),
    ("MultiTalkWav2VecLoader", "model"): ("audio_encoders",),
    ("MultiTalkTextEncoderLoader", "text_encoder"): ("text_encoders",),
    ("MultiTalkClipVisionLoader", "clip_vision"): ("clip_vision",),
    ("MultiTalkVAELoader", "vae"): ("vae",),
}


def resolve_model_folders(prompt: dict, models_dir: str) -> dict:
    """A copy of `prompt` in which each model file name that is not already a path to a file
    becomes its path under `models_dir`/<folder>, where that file exists."""
    prompt = copy.deepcopy(prompt)
    root = os.path.expanduser(models_dir)
    for node in prompt.values():
        for (class_type, name), folders in MODEL_FOLDERS.items():
            value = node.get("inputs", {}).get(name)
            if node.get("class_type") != class_type or not isinstance(value, str) or os.path.isfile(value):
                continue
            found = [os.path.join(root, folder, value) for folder in folders
                     if value and os.path.exists(os.path.join(root, folder, value))]
            if found:
                node["inputs"][name] = found[0]
    return prompt
