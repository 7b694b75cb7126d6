"""Speed and memory settings: how the MultiTalk model runs (block swap, compile, fp8 products,
guidance batching, attention) and how the pack's VAE tiles. Numbers change only where a
tooltip says so."""
from __future__ import annotations

import copy
import logging

from ..models.dit.attention import BACKENDS
from . import comfy_bridge
from .model_nodes import MultiTalkModel
from .model_runtime import retune

CATEGORY = "MultiTalk/loaders"
logger = logging.getLogger("MultiTalk")


class MultiTalkModelOptions:
    DESCRIPTION = ("How the MultiTalk model runs: block swap (keep some transformer blocks in CPU memory and stream "
                   "them in, for cards with less VRAM), guidance batching, regional torch.compile, fp8 matrix "
                   "products and the attention kernel. The node's notes report what is in force.")
    CATEGORY = CATEGORY
    FUNCTION = "apply"
    RETURN_TYPES = ("MULTITALK_MODEL",)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = ("The same model with these run settings.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MULTITALK_MODEL", {"tooltip": "The model from MultiTalk Model Loader or MultiTalk LoRA."}),
            "block_swap": (["auto", "off", "manual"], {"default": "auto", "tooltip": (
                "auto: stream as many blocks from CPU memory as free VRAM requires (none when it all fits; "
                "inside ComfyUI, as its model manager allots). off: keep every block on the GPU. manual: "
                "stream blocks_to_swap blocks. Output is identical either way.")}),
            "blocks_to_swap": ("INT", {"default": 20, "min": 0, "max": 40, "tooltip": (
                "With block_swap manual: how many of the 40 blocks live in CPU memory (each ~0.7 GB in bf16).")}),
            "guidance_batch": (["auto", "batched", "sequential"], {"default": "auto", "tooltip": (
                "Guidance passes of a step: auto runs them together when VRAM holds their activations, else "
                "one after the other. Same numbers either way.")}),
            "compile": ("BOOLEAN", {"default": False, "tooltip": (
                "torch.compile the transformer block once for all 40 (regional). First window compiles "
                "(a minute or two), later ones run faster. Numbers agree within float rounding.")}),
            "fp8_matmul": ("BOOLEAN", {"default": False, "tooltip": (
                "For fp8 weights on GPUs with fp8 tensor cores (RTX 40xx, H100/H200, 50xx): multiply in fp8, "
                "activations rounded to fp8 per tensor. Faster; an approximation. Elsewhere ignored (bf16).")}),
            "attention": (["keep"] + [b for b in BACKENDS if b != "auto"], {"default": "keep", "tooltip": (
                "Attention kernel: keep the loader's, or choose one (sdpa exact; sageattention quantises).")}),
        }}

    def apply(self, model: MultiTalkModel, block_swap: str, blocks_to_swap: int, guidance_batch: str,
              compile: bool, fp8_matmul: bool, attention: str):
        from ..models.dit.placement import check_swap_setting
        from ..models.dit.runtime import RuntimeOptions

        base = model.base if model.base is not None else model.model
        swap = {"auto": "auto", "off": 0}.get(block_swap, int(blocks_to_swap))
        options = RuntimeOptions(check_swap_setting(swap, len(base.blocks)), guidance_batch, bool(compile),
                                 bool(fp8_matmul), attention)
        if attention != "keep":
            from ..models.dit.attention import get_attention

            get_attention(attention, model.device)  # refuse a backend this machine lacks, now
        dit, lines = retune(model.model, options)  # the LoRAs stay as applied: no second merged copy
        for line in lines:
            logger.info("MultiTalkModelOptions: %s", line)
        result = MultiTalkModel(dit, model.device, model.offload, model.name, base=base, loras=model.loras,
                                options=options, notes=list(model.notes))
        return {"ui": comfy_bridge.notes_ui(list(model.notes) + lines), "result": (result,)}


class MultiTalkVAETiling:
    DESCRIPTION = ("Spatial tiling of the pack's Wan VAE (time is always streamed): large frames decode and encode "
                   "in overlapping tiles blended across the overlap, so 720p fits small cards.")
    CATEGORY = CATEGORY
    FUNCTION = "apply"
    RETURN_TYPES = ("VAE",)
    RETURN_NAMES = ("vae",)
    OUTPUT_TOOLTIPS = ("The same VAE with this tiling.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "vae": ("VAE", {"tooltip": "The VAE from MultiTalk VAE Loader."}),
            "tiling": (["auto", "on", "off"], {"default": "auto", "tooltip": (
                "auto: tile only when a frame would not fit in free VRAM. on: always (an approximation: each "
                "tile sees its own part of the frame; the blend hides seams). off: never.")}),
            "tile_size": ("INT", {"default": 256, "min": 64, "max": 2048, "step": 32, "tooltip": "Tile side in pixels."}),
            "overlap": ("INT", {"default": 64, "min": 0, "max": 512, "step": 8, "tooltip": (
                "Pixels neighbouring tiles share and blend (more: smoother, slower).")}),
        }}

    def apply(self, vae, tiling: str, tile_size: int, overlap: int):
        from ..models.encoders.vae import WanVAE
        from ..models.encoders.vae_tiling import Tiling

        if not isinstance(vae, WanVAE):
            note = "This VAE is not the pack's: use ComfyUI's VAE Decode (Tiled) for it. Passed through unchanged."
            return {"ui": comfy_bridge.notes_ui([note]), "result": (vae,)}
        tiled = copy.copy(vae)  # shares the weights
        tiled.tiling = {"auto": "auto", "off": None}.get(tiling, Tiling(int(tile_size), min(int(overlap), tile_size // 2)))
        return (tiled,)


NODE_CLASS_MAPPINGS = {"MultiTalkModelOptions": MultiTalkModelOptions, "MultiTalkVAETiling": MultiTalkVAETiling}
NODE_DISPLAY_NAME_MAPPINGS = {"MultiTalkModelOptions": "MultiTalk Model Options",
                              "MultiTalkVAETiling": "MultiTalk VAE Tiling"}
