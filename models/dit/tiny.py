"""Tiny seeded DiT weights in the released key layout (for the demo and the tests).

Random weights draw noise, but they run every code path a real 14B checkpoint runs.
"""
from __future__ import annotations

import torch
from torch import nn

from .config import DiTConfig
from .layers import RMSNorm
from .model import MultiTalkDiT


def tiny_dit_config(num_layers: int = 2, dim: int = 32, num_heads: int = 2) -> DiTConfig:
    """A 2-layer width-32 DiT with the real CLIP (1280) and wav2vec (12 x 768) input sizes."""
    return DiTConfig(dim=dim, ffn_dim=2 * dim, num_heads=num_heads, num_layers=num_layers, text_dim=16,
                     text_len=16, freq_dim=16, audio_intermediate_dim=8, audio_token_dim=32, audio_tokens=4)


def random_dit_state_dict(config: DiTConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    """Seeded random weights for `config`: norm scales near 1, small matrices and biases."""
    with torch.device("meta"):
        model = MultiTalkDiT(config)
    return random_state_of(model, seed)


def random_state_of(model: nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    """Seeded random values for every tensor of a (meta) model, in sorted key order."""
    generator = torch.Generator().manual_seed(seed)
    norm_weights = {f"{name}.weight" for name, m in model.named_modules() if isinstance(m, (nn.LayerNorm, RMSNorm))}
    state = {}
    for key, tensor in sorted(model.state_dict().items()):
        noise = torch.randn(tensor.shape, generator=generator)
        if key in norm_weights:
            state[key] = 1.0 + 0.1 * noise
        elif key.endswith("modulation"):
            state[key] = noise / tensor.shape[-1] ** 0.5
        elif key.startswith(("audio_proj", "audio_emb")) and tensor.dim() == 2:
            state[key] = 0.02 * noise  # the flattened wav2vec windows are 46k wide
        else:
            state[key] = (0.1 if tensor.dim() >= 2 else 0.05) * noise
    return state


def save_tiny_dit(folder, config: DiTConfig | None = None, seed: int = 0) -> tuple[str, str]:
    """Write a tiny base model and its audio layers as two files, as the real ones ship:
    (base .safetensors, multitalk-style audio .safetensors). The head count and text length
    travel in the safetensors metadata so the files load with no extra arguments."""
    import os

    from safetensors.torch import save_file

    from .keys import is_audio_key

    config = config or tiny_dit_config()
    state = random_dit_state_dict(config, seed)
    meta = {"multitalk.num_heads": str(config.num_heads), "multitalk.text_len": str(config.text_len)}
    base = os.path.join(folder, "tiny_wan_i2v.safetensors")
    audio = os.path.join(folder, "tiny_multitalk.safetensors")
    save_file({k: v for k, v in state.items() if not is_audio_key(k)}, base, metadata=meta)
    save_file({k: v for k, v in state.items() if is_audio_key(k)}, audio)
    return base, audio


def tiny_dit_inputs(seed: int = 3) -> dict[str, torch.Tensor]:
    """One forward's inputs for `tiny_dit_config()`: 3 latent frames of 8x12 (72 tokens), two
    speakers (a left block, a right block, the background the rest), 9 video frames of audio."""
    g = torch.Generator().manual_seed(seed)
    masks = torch.zeros(3, 8, 12)
    masks[0, 1:7, :5], masks[1, :, 7:] = 1, 1
    masks[2] = (masks[:2].sum(0) == 0).float()
    return dict(x=torch.randn(1, 16, 3, 8, 12, generator=g), t=torch.tensor([600.0]),
                context=torch.randn(1, 7, 16, generator=g), clip_fea=torch.randn(1, 257, 1280, generator=g),
                y=torch.randn(1, 20, 3, 8, 12, generator=g), audio=torch.randn(1, 2, 9, 5, 12, 768, generator=g),
                ref_masks=masks)


def run_tiny_dit(model: MultiTalkDiT, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """The model's output for `tiny_dit_inputs` (no gradient; audio in the model's compute dtype)."""
    with torch.no_grad():
        return model(inputs["x"], inputs["t"], inputs["context"], inputs["clip_fea"], inputs["y"],
                     audio=inputs["audio"].to(model.compute_dtype), ref_masks=inputs["ref_masks"])
