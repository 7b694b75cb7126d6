"""Wan2.1 VAE weights -> diffusers' AutoencoderKLWan.

Accepts the original layout (Wan2.1_VAE.pth; ComfyUI's wan_2.1_vae.safetensors uses the same
names) through diffusers' own converter, and files already in the diffusers layout. The
converter assumes the released block structure (2 residual blocks per level, width
multipliers 1,2,4,4, temporal downsampling on the last two levels); only the base width and
latent channels are read from the weights, so tiny test files keep that structure.
"""
from __future__ import annotations

import torch

from ..errors import EncoderInputError
from ..weights import dequantized, empty_weights, materialize, open_weights
from .kinds import wrong_kind
from .vae import WanVAE

_ORIGINAL_MARKER = "decoder.upsamples.0.residual.0.gamma"
_DIFFUSERS_MARKER = "decoder.up_blocks.0.resnets.0.norm1.gamma"
_WAN22_MARKER = "decoder.upsamples.0.upsamples.0.residual.2.weight"
_PREFIXES = ("vae.", "first_stage_model.")
_HINT = "Use Wan2.1_VAE.pth (Wan release) or wan_2.1_vae.safetensors (ComfyUI)."


def _strip_prefix(keys: list[str]) -> str:
    for prefix in _PREFIXES:
        if any(k.startswith(prefix + _ORIGINAL_MARKER) or k.startswith(prefix + _DIFFUSERS_MARKER) for k in keys):
            return prefix
    return ""


def diffusers_state_dict(weights, path: str, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Any supported Wan2.1 VAE layout -> AutoencoderKLWan keys, cast to `dtype`."""
    from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

    keys = list(weights.keys())
    if any(_WAN22_MARKER in k for k in keys):
        raise EncoderInputError(
            f"'{path}' is the Wan2.2 VAE (48 latent channels); MultiTalk runs on Wan2.1 and needs "
            f"the Wan2.1 VAE (16 latent channels). {_HINT}"
        )
    prefix = _strip_prefix(keys)
    state = {k[len(prefix):]: t for k, t in dequantized(weights, dtype, keep=lambda k: k.startswith(prefix))}
    if _ORIGINAL_MARKER in state:
        return convert_wan_vae_to_diffusers(state)
    if _DIFFUSERS_MARKER in state:
        return state
    raise EncoderInputError(wrong_kind(path, keys, "the Wan2.1 VAE", _HINT))


def infer_config(state: dict[str, torch.Tensor]) -> dict:
    """AutoencoderKLWan arguments: base width and latent channels from the weights."""
    base_dim = state["encoder.conv_in.weight"].shape[0]  # [dim, 3, 3, 3, 3]
    z_dim = state["post_quant_conv.weight"].shape[0]  # [z, z, 1, 1, 1]
    if z_dim != 16:
        raise EncoderInputError(f"This VAE has {z_dim} latent channels; the Wan2.1 VAE has 16.")
    return {"base_dim": base_dim, "z_dim": z_dim}


def load_autoencoder(path: str, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    """The AutoencoderKLWan for a file (on the CPU, in `dtype`)."""
    from diffusers import AutoencoderKLWan

    state = diffusers_state_dict(open_weights(path, EncoderInputError, allow_folder=False), path, dtype)
    with empty_weights():
        model = AutoencoderKLWan(**infer_config(state))
    return materialize(model, state, "Wan VAE", EncoderInputError, path)


def load_vae(path: str, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
             offload_device: torch.device | str = "cpu") -> WanVAE:
    """The Wan2.1 VAE from a file as a ComfyUI-compatible VAE object (weights kept on offload_device)."""
    return WanVAE(load_autoencoder(path, dtype), device=device, dtype=dtype, offload_device=offload_device)
