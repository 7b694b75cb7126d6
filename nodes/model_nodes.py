"""Loading the MultiTalk DiT: Wan2.1-I2V base weights plus a MultiTalk / InfiniteTalk audio file."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Optional

import torch

from ..models.dit.attention import BACKENDS
from . import comfy_bridge

CATEGORY = "MultiTalk/loaders"
logger = logging.getLogger("MultiTalk")
DTYPES = ["auto", "bf16", "fp16", "fp32", "fp8_e4m3fn"]


@dataclass
class MultiTalkModel:
    """The MULTITALK_MODEL socket: the DiT and where it lives between runs."""

    model: torch.nn.Module
    device: torch.device
    offload: bool  # move the weights to the CPU after each sampling run
    name: str
    base: Optional[torch.nn.Module] = None  # the loader's model, under LoRAs and run options
    loras: tuple = ()  # ((LoraFile, strength, mode), ...) applied to `base`
    options: Any = None  # models.dit.runtime.RuntimeOptions, or None: the loader's defaults
    notes: list = field(default_factory=list)  # what the LoRAs and options did, for the nodes' notes

    def to_device(self, tokens: Optional[int] = None, batch: int = 1, training: bool = False) -> torch.nn.Module:
        """The DiT on its device for a run (`tokens` per item, `batch` items: block swap as memory needs;
        never when training, whose gradients must reach the resident weights)."""
        from .model_runtime import load_for_run

        return load_for_run(self, tokens, batch, training)

    def ensure_loaded(self) -> None:
        from .model_runtime import ensure_loaded

        ensure_loaded(self)

    @property
    def family(self) -> str:
        """multitalk, or anytalker-1.3b / anytalker-14b (models/anytalker/family.py)."""
        from ..models.anytalker.family import model_family

        return model_family(self.model)

    def release(self) -> None:
        from .model_runtime import release

        release(self)


class MultiTalkModelLoader:
    DESCRIPTION = ("Loads the Wan2.1-I2V-14B diffusion model (single file, fp16/bf16/fp8 incl. scaled fp8, a GGUF "
                   "file (Q8_0, Q6_K, Q5_K_M, Q4_K_M, ...: kept quantised), or sharded with its index json) and lays "
                   "the MultiTalk or InfiniteTalk audio layers (safetensors or GGUF) over it. Also loads an AnyTalker "
                   "checkpoint (1_3B-single-v1.pth or 14B-multi-v1.pth, a complete model: no audio_weights); the "
                   "family is read off the weights and the sampler follows it.")
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = ("MULTITALK_MODEL",)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = ("The MultiTalk diffusion model, for MultiTalk Sampler.",)

    @classmethod
    def INPUT_TYPES(cls):
        comfy_bridge.register_extra_folders()
        return {"required": {
            "model": comfy_bridge.model_file_input(
                "diffusion_models", "Wan2.1-I2V-14B weights (a file, or the *.index.json of the shards), or an "
                "AnyTalker checkpoint (.pth as released)"),
            "audio_weights": comfy_bridge.model_file_input(
                "model_patches", "multitalk.safetensors or infinitetalk.safetensors (audio layers only; MultiTalk "
                "family only: none for AnyTalker, whose checkpoint holds its own)",
                optional_none=True),
            "dtype": (DTYPES, {"default": "auto", "tooltip": (
                "Weights in memory. auto: as stored (fp8 files stay fp8). fp8_e4m3fn (MultiTalk family only) "
                "quantises the transformer blocks of a 16-bit file to halve VRAM; computation then runs in bf16. "
                "AnyTalker: auto, bf16, fp16 or fp32.")}),
            "attention": (list(BACKENDS), {"default": "auto", "tooltip": (
                "Attention kernel. auto/sdpa: PyTorch's, exact and memory-efficient everywhere. xformers, "
                "flash_attn, sageattention: used when installed, CUDA only (the last two change numbers slightly).")}),
            "device": (list(comfy_bridge.DEVICE_CHOICES), {"default": "auto", "tooltip": "auto: ComfyUI's GPU; cpu: very slow, for tests."}),
            "offload": ("BOOLEAN", {"default": True, "tooltip": (
                "Move the model to the CPU after each run, freeing VRAM for the VAE and other nodes.")}),
        }, "optional": {
            "fresh_audio_layers": ("BOOLEAN", {"default": False, "tooltip": (
                "Only for training a new adapter (MultiTalk family): accept a base model without audio layers and "
                "start them from random values. Generating with such a model ignores the audio.")}),
        }}

    def load(self, model: str, audio_weights: str, dtype: str, attention: str, device: str, offload: bool,
             fresh_audio_layers: bool = False):
        from ..models import load_dit
        from ..models.anytalker.family import ANYTALKER_FAMILIES, describe_family
        from ..models.anytalker.loading import sources_family

        sources = [comfy_bridge.resolve_model_path("diffusion_models", model)]
        if audio_weights and audio_weights != "none":
            sources.append(_resolve_audio_weights(audio_weights))
        target = comfy_bridge.chosen_device(device)
        family = sources_family(*sources)
        logger.info("MultiTalkModelLoader: %s", describe_family(family))
        if family in ANYTALKER_FAMILIES:
            dit = _load_anytalker(sources[0], dtype, fresh_audio_layers)
        else:
            dit = load_dit(sources, dtype=None if dtype == "auto" else dtype, device="cpu", attention="auto",
                           require_audio=not fresh_audio_layers)
        if attention not in ("auto", "sdpa"):
            dit.attention = _checked_attention(attention, target)
        # Weights stay in CPU memory until a run places them (whole, or with block swap as VRAM allows).
        return (MultiTalkModel(dit, target, offload, model, base=dit),)


def _load_anytalker(path: str, dtype: str, fresh_audio_layers: bool):
    from ..models.anytalker import load_anytalker
    from ..models.errors import CheckpointError

    if fresh_audio_layers:
        raise CheckpointError("fresh_audio_layers starts new MultiTalk audio layers on a Wan2.1 base; an AnyTalker "
                              "checkpoint has trained audio layers of its own: turn fresh_audio_layers off.")
    return load_anytalker(path, dtype=None if dtype == "auto" else dtype, device="cpu")


def _resolve_audio_weights(name: str) -> str:
    try:
        return comfy_bridge.resolve_model_path("model_patches", name)
    except ValueError:  # users also keep them beside the base model
        return comfy_bridge.resolve_model_path("diffusion_models", name)


def _checked_attention(name: str, device: torch.device):
    from ..models.dit.attention import get_attention

    return get_attention(name, device)


NODE_CLASS_MAPPINGS = {"MultiTalkModelLoader": MultiTalkModelLoader}
NODE_DISPLAY_NAME_MAPPINGS = {"MultiTalkModelLoader": "MultiTalk Model Loader"}
