"""Input and output specs of the ComfyUI core nodes the shipped workflows use.

Facts read from ComfyUI (Comfy-Org/ComfyUI a125cd84, Oct 2025): nodes.py (LoadImage,
LoadImageMask, SaveImage, PreviewImage, CLIPLoader, CLIPTextEncode, CLIPVisionLoader,
CLIPVisionEncode, VAELoader), comfy_extras/nodes_audio.py (LoadAudio),
comfy_extras/nodes_video.py and comfy_api/latest/_util/video_types.py (LoadVideo, CreateVideo,
SaveVideo, their format/codec choices). The frontend adds widgets of its own after a node's
inputs (upload buttons, the audio player); their saved values are `ui_extra_widgets`.
"""
from __future__ import annotations

from dataclasses import dataclass

FILE_TYPE = "FILE"  # "FILE:<folder>": a drop-down of the files in one of ComfyUI's folders
WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN")
UI_ONLY_NODES = ("Note", "MarkdownNote")  # frontend-only: never in API-format workflows


def file_input(folder: str) -> str:
    return f"{FILE_TYPE}:{folder}"


def is_widget(kind) -> bool:
    """Whether an input of this declared type is a widget (a value) rather than a socket (a link)."""
    return isinstance(kind, (list, tuple)) or kind in WIDGET_TYPES or str(kind).startswith(FILE_TYPE + ":")


@dataclass(frozen=True)
class NativeSpec:
    inputs: dict  # shaped like INPUT_TYPES(): {"required": {...}, "optional": {...}}
    outputs: tuple[str, ...]
    output_names: tuple[str, ...]
    output_node: bool = False
    ui_extra_widgets: tuple = ()
    runs_outside_comfyui: bool = True  # the command line has a stand-in for it


CLIP_TYPES = ["stable_diffusion", "stable_cascade", "sd3", "stable_audio", "mochi", "ltxv", "pixart", "cosmos",
              "lumina2", "wan", "hidream", "chroma", "ace", "omnigen2", "qwen_image", "hunyuan_image"]

NATIVE_SPECS: dict[str, NativeSpec] = {
    "LoadImage": NativeSpec(
        {"required": {"image": (file_input("input"), {"image_upload": True})}},
        ("IMAGE", "MASK"), ("IMAGE", "MASK"), ui_extra_widgets=("image",)),
    "LoadImageMask": NativeSpec(
        {"required": {"image": (file_input("input"), {"image_upload": True}),
                      "channel": (["alpha", "red", "green", "blue"],)}},
        ("MASK",), ("MASK",), ui_extra_widgets=("image",)),
    "LoadAudio": NativeSpec(
        {"required": {"audio": (file_input("input"), {"audio_upload": True})}},
        ("AUDIO",), ("AUDIO",), ui_extra_widgets=(None, None)),
    "LoadVideo": NativeSpec(  # comfy_extras/nodes_video.py LoadVideo; the upload widget saves "image"
        {"required": {"file": (file_input("input"), {"video_upload": True})}},
        ("VIDEO",), ("VIDEO",), ui_extra_widgets=("image",)),
    "CreateVideo": NativeSpec(
        {"required": {"images": ("IMAGE",), "fps": ("FLOAT", {"default": 30.0, "min": 1.0, "max": 120.0, "step": 1.0})},
         "optional": {"audio": ("AUDIO",)}},
        ("VIDEO",), ("VIDEO",)),
    "SaveVideo": NativeSpec(
        {"required": {"video": ("VIDEO",), "filename_prefix": ("STRING", {"default": "video/ComfyUI"}),
                      "format": (["auto", "mp4"], {"default": "auto"}),
                      "codec": (["auto", "h264"], {"default": "auto"})}},
        (), (), output_node=True),
    "SaveImage": NativeSpec(
        {"required": {"images": ("IMAGE",), "filename_prefix": ("STRING", {"default": "ComfyUI"})}},
        (), (), output_node=True),
    "PreviewImage": NativeSpec({"required": {"images": ("IMAGE",)}}, (), (), output_node=True),
    "CLIPLoader": NativeSpec(
        {"required": {"clip_name": (file_input("text_encoders"),), "type": (CLIP_TYPES,)},
         "optional": {"device": (["default", "cpu"], {"advanced": True})}},
        ("CLIP",), ("CLIP",), runs_outside_comfyui=False),
    "CLIPTextEncode": NativeSpec(
        {"required": {"text": ("STRING", {"multiline": True, "dynamicPrompts": True}), "clip": ("CLIP",)}},
        ("CONDITIONING",), ("CONDITIONING",), runs_outside_comfyui=False),
    "CLIPVisionLoader": NativeSpec(
        {"required": {"clip_name": (file_input("clip_vision"),)}},
        ("CLIP_VISION",), ("CLIP_VISION",), runs_outside_comfyui=False),
    "CLIPVisionEncode": NativeSpec(
        {"required": {"clip_vision": ("CLIP_VISION",), "image": ("IMAGE",), "crop": (["center", "none"],)}},
        ("CLIP_VISION_OUTPUT",), ("CLIP_VISION_OUTPUT",), runs_outside_comfyui=False),
    "VAELoader": NativeSpec(
        {"required": {"vae_name": (file_input("vae"),)}},
        ("VAE",), ("VAE",), runs_outside_comfyui=False),
}
