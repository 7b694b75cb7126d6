"""Where the model files of the shipped workflows come from and which models folder they go in.

The UI workflows carry this as each loader node's `properties.models` list ({name, url,
directory}), which ComfyUI's frontend reads when a workflow is opened: a user who lacks a file
is shown its name, its models/<directory> folder and a download link. The sources, checked on
Hugging Face (see docs/workflows.md for how each was found):

- Wan2.1 I2V 14B 480p DiT (fp16, and fp8_e4m3fn for the few-step workflow), umt5-xxl text encoder, CLIP vision H, Wan2.1 VAE: Comfy-Org's
  repackaged single files (Comfy-Org/Wan_2.1_ComfyUI_repackaged, split_files/<folder>/).
- wav2vec2-chinese-base_fp16.safetensors: Kijai/wav2vec2_safetensors, a single-file copy of
  TencentGameMate/chinese-wav2vec2-base (the file name ComfyUI's InfiniteTalk templates use).
- multitalk.safetensors: MeiGen-AI/MeiGen-MultiTalk; infinitetalk.safetensors: MeiGen-AI/InfiniteTalk
  (single/, the one-speaker adapter the long-video workflow uses).
- Wan21_T2V_14B_lightx2v_cfg_step_distill_lora_rank32.safetensors: Kijai/WanVideo_comfy, the
  lightx2v 4-step LoRA under the name ComfyUI workflows use (loras/).
AnyTalker's files are not listed: its checkpoints are released only as .pth and its wav2vec2 is a
folder (weights beside config files), neither of which the dialog can download; the AnyTalker
workflows' notes say where they come from (zzz66/AnyTalker-1.3B, facebook/wav2vec2-base-960h).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelFile:
    name: str  # the file name as the loader widget shows it
    url: str  # direct download (huggingface.co/<repo>/resolve/main/<path>)
    directory: str  # ComfyUI models folder it belongs in

    def as_property(self) -> dict:
        return {"name": self.name, "url": self.url, "directory": self.directory}


_COMFY_WAN21 = "https://huggingface.co/Comfy-Org/Wan_2.1_ComfyUI_repackaged/resolve/main/split_files"

MODEL_FILES: dict[str, ModelFile] = {m.name: m for m in (
    ModelFile("wan2.1_i2v_480p_14B_fp16.safetensors",
              f"{_COMFY_WAN21}/diffusion_models/wan2.1_i2v_480p_14B_fp16.safetensors", "diffusion_models"),
    ModelFile("wan2.1_i2v_480p_14B_fp8_e4m3fn.safetensors",
              f"{_COMFY_WAN21}/diffusion_models/wan2.1_i2v_480p_14B_fp8_e4m3fn.safetensors", "diffusion_models"),
    ModelFile("Wan21_T2V_14B_lightx2v_cfg_step_distill_lora_rank32.safetensors",
              "https://huggingface.co/Kijai/WanVideo_comfy/resolve/main/"
              "Wan21_T2V_14B_lightx2v_cfg_step_distill_lora_rank32.safetensors", "loras"),
    ModelFile("umt5_xxl_fp8_e4m3fn_scaled.safetensors",
              f"{_COMFY_WAN21}/text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors", "text_encoders"),
    ModelFile("clip_vision_h.safetensors", f"{_COMFY_WAN21}/clip_vision/clip_vision_h.safetensors", "clip_vision"),
    ModelFile("wan_2.1_vae.safetensors", f"{_COMFY_WAN21}/vae/wan_2.1_vae.safetensors", "vae"),
    ModelFile("wav2vec2-chinese-base_fp16.safetensors",
              "https://huggingface.co/Kijai/wav2vec2_safetensors/resolve/main/wav2vec2-chinese-base_fp16.safetensors",
              "audio_encoders"),
    ModelFile("multitalk.safetensors",
              "https://huggingface.co/MeiGen-AI/MeiGen-MultiTalk/resolve/main/multitalk.safetensors", "model_patches"),
    ModelFile("infinitetalk.safetensors",
              "https://huggingface.co/MeiGen-AI/InfiniteTalk/resolve/main/single/infinitetalk.safetensors",
              "model_patches"),
)}


def models_for_widgets(values: list) -> list[dict]:
    """`properties.models` of a node whose widget values are `values`: one entry per known file
    it selects, in widget order."""
    names = [v for v in values if isinstance(v, str)]
    return [MODEL_FILES[name].as_property() for name in dict.fromkeys(names) if name in MODEL_FILES]
