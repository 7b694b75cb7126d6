"""Write the pack's tiny seeded models into a ComfyUI-style models folder.

    python tests/comfyui_tiny_models.py MODELS_DIR

Each file goes to the folder its loader reads inside ComfyUI (diffusion_models, model_patches,
text_encoders, clip_vision, vae, audio_encoders); prints {loader input: file name} as JSON.
Used by tests/test_comfyui_integration.py; handy for trying the pack in a real ComfyUI too.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile

# TinyWeights field -> ComfyUI model folder.
FOLDERS = {
    "dit": "diffusion_models",
    "audio_weights": "model_patches",
    "text_encoder": "text_encoders",
    "clip_vision": "clip_vision",
    "vae": "vae",
    "wav2vec": "audio_encoders",
}


def write_models(models_dir: str, seed: int = 0) -> dict[str, str]:
    """Write every tiny model under `models_dir`; {TinyWeights field: file name in its folder}."""
    from comfyui_multitalk.cli.tiny_weights import write_tiny_weights

    names = {}
    with tempfile.TemporaryDirectory() as staging:
        weights = write_tiny_weights(staging, seed=seed)
        for field, folder in FOLDERS.items():
            source = getattr(weights, field)
            os.makedirs(os.path.join(models_dir, folder), exist_ok=True)
            names[field] = os.path.basename(source)
            shutil.move(source, os.path.join(models_dir, folder, names[field]))
    return names


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(json.dumps(write_models(sys.argv[1])))
