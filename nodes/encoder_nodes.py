"""Loaders and encoders for the text encoder (umt5-xxl), CLIP vision and the Wan2.1 VAE.

They output ComfyUI's native types (CONDITIONING, CLIP_VISION, CLIP_VISION_OUTPUT, VAE), so
native loaders and these nodes can stand in for each other in a graph.
"""
from __future__ import annotations

import torch

from ..models.encoders.devices import resolve_dtype
from ..models.errors import EncoderInputError
from . import comfy_bridge

CATEGORY = "MultiTalk/encoders"
DEVICES = list(comfy_bridge.DEVICE_CHOICES)
DTYPE_CHOICES = ["auto", "bf16", "fp16", "fp32"]
_DEVICE_TIP = ("Where the model computes. auto: the GPU ComfyUI uses (weights rest on the CPU between runs); "
               "cpu: slower, saves VRAM.")


def _device(choice: str) -> torch.device:
    return comfy_bridge.chosen_device(choice)


class MultiTalkTextEncoderLoader:
    DESCRIPTION = ("Loads the umt5-xxl text encoder used by Wan2.1 from ComfyUI's umt5_xxl files (bf16, fp16, "
                   "fp8, scaled fp8) or the Wan release's models_t5_umt5-xxl-enc-bf16.pth.")
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = ("MULTITALK_T5",)
    RETURN_NAMES = ("t5",)
    OUTPUT_TOOLTIPS = ("The text encoder with its tokenizer, for MultiTalk Text Encode.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "text_encoder": comfy_bridge.model_file_input("text_encoders", "The umt5-xxl weights"),
            "tokenizer": ("STRING", {"default": "", "tooltip": (
                "Tokenizer folder (google/umt5-xxl) or its spiece.model / tokenizer.json. Leave empty when "
                "the weights file carries it (ComfyUI's files) or the folder sits beside the .pth (Wan release).")}),
            "device": (DEVICES, {"default": "auto", "tooltip": _DEVICE_TIP}),
            "dtype": (DTYPE_CHOICES, {"default": "auto", "tooltip": (
                "Precision of the weights in memory. auto: bf16 (as the official pipeline). fp8 files are "
                "dequantised to this dtype.")}),
        }}

    def load(self, text_encoder: str, tokenizer: str, device: str, dtype: str):
        from ..models.encoders import load_text_encoder

        path = comfy_bridge.resolve_model_path("text_encoders", text_encoder)
        dev = _device(device)
        model = load_text_encoder(path, tokenizer.strip(), device=dev,
                                  dtype=resolve_dtype(dtype, dev, "bf16", "bf16"),
                                  offload_device=comfy_bridge.offload_device())
        return (model,)


class MultiTalkTextEncode:
    DESCRIPTION = ("Encodes the positive and negative prompts like the official Wan pipeline: only the prompt's "
                   "own tokens (at most 512) are passed on. An empty negative uses the official negative prompt.")
    CATEGORY = CATEGORY
    FUNCTION = "encode"
    RETURN_TYPES = ("CONDITIONING", "CONDITIONING")
    RETURN_NAMES = ("positive", "negative")
    OUTPUT_TOOLTIPS = ("Positive prompt embeddings [1, L, 4096].", "Negative prompt embeddings [1, L, 4096].")

    @classmethod
    def INPUT_TYPES(cls):
        from ..models.encoders.text_encoder import DEFAULT_NEGATIVE_PROMPT

        return {"required": {
            "t5": ("MULTITALK_T5", {"tooltip": "The text encoder from MultiTalk Text Encoder Loader."}),
            "positive": ("STRING", {"multiline": True, "default": "", "tooltip": "What the video shows."}),
            "negative": ("STRING", {"multiline": True, "default": DEFAULT_NEGATIVE_PROMPT, "tooltip": (
                "What to avoid. The default is the official Wan negative prompt; an empty box also uses it.")}),
        }}

    def encode(self, t5, positive: str, negative: str):
        from ..models.encoders.text_encoder import DEFAULT_NEGATIVE_PROMPT

        negative = negative if negative.strip() else DEFAULT_NEGATIVE_PROMPT
        return (t5.conditioning(positive), t5.conditioning(negative))


class MultiTalkClipVisionLoader:
    DESCRIPTION = ("Loads the CLIP ViT-H/14 vision tower used by Wan2.1 I2V from ComfyUI's clip_vision_h.safetensors "
                   "or the Wan release's open_clip .pth. Works with ComfyUI's CLIP Vision Encode too.")
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = ("CLIP_VISION",)
    RETURN_NAMES = ("clip_vision",)
    OUTPUT_TOOLTIPS = ("The CLIP vision model.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "clip_vision": comfy_bridge.model_file_input("clip_vision", "The CLIP vision weights"),
            "device": (DEVICES, {"default": "auto", "tooltip": _DEVICE_TIP}),
            "dtype": (DTYPE_CHOICES, {"default": "auto", "tooltip": (
                "Precision of the weights. auto: fp16 on a GPU (as the official pipeline), fp32 on the CPU.")}),
        }}

    def load(self, clip_vision: str, device: str, dtype: str):
        from ..models.encoders import load_clip_vision

        path = comfy_bridge.resolve_model_path("clip_vision", clip_vision)
        dev = _device(device)
        return (load_clip_vision(path, device=dev, dtype=resolve_dtype(dtype, dev, "fp16", "fp32"),
                                 offload_device=comfy_bridge.offload_device()),)


class MultiTalkClipVisionEncode:
    DESCRIPTION = ("Encodes the reference image with CLIP vision. 'none' resizes the whole frame to 224x224 as "
                   "the official pipeline does; 'center' crops a centred square first.")
    CATEGORY = CATEGORY
    FUNCTION = "encode"
    RETURN_TYPES = ("CLIP_VISION_OUTPUT",)
    RETURN_NAMES = ("clip_vision_output",)
    OUTPUT_TOOLTIPS = ("CLIP features; penultimate_hidden_states [N, 257, 1280] feed the MultiTalk sampler.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "clip_vision": ("CLIP_VISION", {"tooltip": "A CLIP vision model (this pack's loader or ComfyUI's)."}),
            "image": ("IMAGE", {"tooltip": "The reference image (one frame per output row)."}),
            "crop": (["none", "center"], {"default": "none", "tooltip": (
                "none: whole frame squeezed to 224x224 (official MultiTalk); center: centred square crop.")}),
        }}

    def encode(self, clip_vision, image: torch.Tensor, crop: str):
        if crop not in ("none", "center"):
            raise EncoderInputError(f"Unknown crop '{crop}': choose none (the official whole frame) or center.")
        return (clip_vision.encode_image(image, crop=crop == "center"),)


class MultiTalkVAELoader:
    DESCRIPTION = ("Loads the Wan2.1 VAE (Wan2.1_VAE.pth or wan_2.1_vae.safetensors). Encode returns raw latents "
                   "and decode takes them, exactly like ComfyUI's own VAE loader.")
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = ("VAE",)
    RETURN_NAMES = ("vae",)
    OUTPUT_TOOLTIPS = ("The Wan2.1 VAE; decoding streams frame by frame so long videos fit in memory.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "vae": comfy_bridge.model_file_input("vae", "The Wan2.1 VAE weights"),
            "device": (DEVICES, {"default": "auto", "tooltip": _DEVICE_TIP}),
            "dtype": (DTYPE_CHOICES, {"default": "auto", "tooltip": (
                "Precision. auto: bf16 on a GPU (as ComfyUI), fp32 on the CPU. fp32 is closest to the official.")}),
        }}

    def load(self, vae: str, device: str, dtype: str):
        from ..models.encoders import load_vae

        path = comfy_bridge.resolve_model_path("vae", vae)
        dev = _device(device)
        return (load_vae(path, device=dev, dtype=resolve_dtype(dtype, dev, "bf16", "fp32"),
                         offload_device=comfy_bridge.offload_device()),)


NODE_CLASS_MAPPINGS = {
    "MultiTalkTextEncoderLoader": MultiTalkTextEncoderLoader,
    "MultiTalkTextEncode": MultiTalkTextEncode,
    "MultiTalkClipVisionLoader": MultiTalkClipVisionLoader,
    "MultiTalkClipVisionEncode": MultiTalkClipVisionEncode,
    "MultiTalkVAELoader": MultiTalkVAELoader,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "MultiTalkTextEncoderLoader": "MultiTalk Text Encoder Loader (umt5-xxl)",
    "MultiTalkTextEncode": "MultiTalk Text Encode",
    "MultiTalkClipVisionLoader": "MultiTalk CLIP Vision Loader",
    "MultiTalkClipVisionEncode": "MultiTalk CLIP Vision Encode",
    "MultiTalkVAELoader": "MultiTalk VAE Loader (Wan2.1)",
}
