"""MultiTalk LoRA: one LoRA file on a MULTITALK_MODEL (chain the node for several)."""
from __future__ import annotations

import logging

from . import comfy_bridge
from .model_nodes import MultiTalkModel
from .model_runtime import build_dit

CATEGORY = "MultiTalk/loaders"
MODES = ["merged", "unmerged"]
logger = logging.getLogger("MultiTalk")


class MultiTalkLoraLoader:
    DESCRIPTION = ("Applies a LoRA to the MultiTalk model: Wan2.1 14B LoRAs in any common format (kohya lora_unet_, "
                   "diffusers/peft lora_A/lora_B, lora_down/lora_up, .diff/.diff_b), including T2V LoRAs and the "
                   "step/CFG-distilled lightx2v and FusioniX LoRAs. Chain the node to stack LoRAs. The input "
                   "model is left unchanged; layers the model lacks are listed in the node's notes.")
    CATEGORY = CATEGORY
    FUNCTION = "apply"
    RETURN_TYPES = ("MULTITALK_MODEL",)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = ("The model with this LoRA (and those of earlier LoRA nodes) applied.",)

    @classmethod
    def INPUT_TYPES(cls):
        comfy_bridge.register_extra_folders()
        return {"required": {
            "model": ("MULTITALK_MODEL", {"tooltip": "The model from MultiTalk Model Loader or another LoRA node."}),
            "lora": comfy_bridge.model_file_input("loras", "A Wan2.1 14B LoRA (.safetensors)"),
            "strength": ("FLOAT", {"default": 1.0, "min": -10.0, "max": 10.0, "step": 0.01, "tooltip": (
                "How much of the LoRA to add (1 = as trained; distilled 4-step LoRAs: 1).")}),
            "mode": (MODES, {"default": "merged", "tooltip": (
                "merged: folded into the weights (fp8 and GGUF re-quantised), no cost per step, the patched layers "
                "take memory again. unmerged: added at compute time, no copy of the weights, a little slower per "
                "step; a new strength applies at once.")}),
        }}

    def apply(self, model: MultiTalkModel, lora: str, strength: float, mode: str):
        from ..models.lora import read_lora

        lora_file = read_lora(comfy_bridge.resolve_model_path("loras", lora))
        base = model.base if model.base is not None else model.model
        loras = tuple(model.loras) + ((lora_file, float(strength), mode),)
        work = model.device if model.device.type == "cuda" else None
        dit, lines = build_dit(base, loras, model.options, work)
        for line in lines:
            logger.info("MultiTalkLoraLoader: %s", line)
        patched = MultiTalkModel(dit, model.device, model.offload, model.name, base=base, loras=loras,
                                 options=model.options, notes=lines)
        return {"ui": comfy_bridge.notes_ui(lines), "result": (patched,)}


NODE_CLASS_MAPPINGS = {"MultiTalkLoraLoader": MultiTalkLoraLoader}
NODE_DISPLAY_NAME_MAPPINGS = {"MultiTalkLoraLoader": "MultiTalk LoRA"}
