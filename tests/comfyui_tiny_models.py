"""Write the pack's tiny seeded models into a ComfyUI-style models folder.

    python tests/comfyui_tiny_models.py MODELS_DIR

Each file goes to the folder its loader reads inside ComfyUI (diffusion_models, model_patches,
text_encoders, clip_vision, vae, audio_encoders, loras); prints {loader input: file name} as JSON.
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
    "anytalker_dit": "diffusion_models",  # tiny_anytalker_1_3B.pth, as the release ships it
    "anytalker_wav2vec": "audio_encoders",  # the whole wav2vec2-base-960h-style folder
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
            if field == "anytalker_wav2vec":  # a Hugging Face folder: ComfyUI lists "<folder>/model.safetensors"
                parent = os.path.dirname(source)
                shutil.move(parent, os.path.join(models_dir, folder, os.path.basename(parent)))
                names[field] = f"{os.path.basename(parent)}/{os.path.basename(source)}"
                continue
            names[field] = os.path.basename(source)
            shutil.move(source, os.path.join(models_dir, folder, names[field]))
    names.update(_write_gguf_models(models_dir, seed))
    names["lora"] = _write_lora(models_dir, seed)
    return names


def _write_lora(models_dir: str, seed: int) -> str:
    """A lightx2v-style LoRA for the tiny DiT, in loras/ (the few-step workflow's)."""
    from safetensors.torch import save_file

    from comfyui_multitalk.models.dit.tiny import random_dit_state_dict, tiny_dit_config

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from lora_helpers import distill_style_lora

    name = "tiny_lightx2v_style_lora.safetensors"
    os.makedirs(os.path.join(models_dir, "loras"), exist_ok=True)
    save_file(distill_style_lora(random_dit_state_dict(tiny_dit_config(), seed=seed)),
              os.path.join(models_dir, "loras", name))
    return name


def _write_gguf_models(models_dir: str, seed: int) -> dict[str, str]:
    """A city96-style Q8_0 DiT and a kijai-style audio-layer GGUF, for the loaders' lists."""
    from gguf import GGMLQuantizationType as Q

    from comfyui_multitalk.models.dit.keys import is_audio_key
    from comfyui_multitalk.models.dit.tiny import random_dit_state_dict, tiny_dit_config
    from comfyui_multitalk.models.weights.gguf_write import write_tiny_gguf

    state = random_dit_state_dict(tiny_dit_config(), seed=seed)
    rule = lambda key, tensor: Q.Q8_0 if tensor.dim() == 2 and key.startswith("blocks.") else Q.F32  # noqa: E731
    files = {"dit_gguf": ("diffusion_models", "wan2.1-i2v-14b-480p-tiny-Q8_0.gguf", False),
             "audio_weights_gguf": ("model_patches", "Wan2_1-InfiniteTalk_Single_tiny_Q8.gguf", True)}
    for folder, name, audio in files.values():
        part = {k: v for k, v in state.items() if is_audio_key(k) == audio}
        write_tiny_gguf(part, os.path.join(models_dir, folder, name), rule)
    return {field: name for field, (_, name, _) in files.items()}


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(json.dumps(write_models(sys.argv[1])))
