"""Shared pieces of the AnyTalker golden tests."""
from __future__ import annotations

from safetensors.torch import load_file

from comfyui_multitalk.models.anytalker import load_anytalker


def e2e_model(golden_dir, variant: str):
    """The tiny golden model with the e2e audio projection (the tiny wav2vec gives 3 layers x 32)."""
    state = load_file(str(golden_dir / f"anytalker_{variant}_tiny_weights.safetensors"))
    replaced = "audio_emb." if variant == "af" else "audio_proj."
    state = {k: v for k, v in state.items() if not k.startswith(replaced)}
    state.update({k[len(variant) + 1:]: v for k, v in
                  load_file(str(golden_dir / "anytalker_e2e_audio_weights.safetensors")).items()
                  if k.startswith(f"{variant}.")})
    return load_anytalker(state, dtype="fp32", num_heads=2, text_len=16)
