"""The shipped few-step workflow, described once like those of workflow_library.

Same node ids as every workflow (2 voice, 10-14 loaders, 20 audio, 21 speakers, 22-23 prompt and
CLIP, 30 sampler, 40-43 outputs), plus 15 the LoRA, 16 the model's run options and 31 the
sampler options.
"""
from __future__ import annotations

from .workflow_graph import Node, Note, Out, Workflow
from .workflow_library import (MODEL_FILES, _audio_encode, _models_note, _outputs, _pack_loaders, _prompt_and_clip,
                               _sampler, _speakers, _voices)

FAST_FILES = {  # the Comfy-Org fp8 repack of the 480p DiT and kijai's copy of lightx2v's 4-step LoRA
    "dit_fp8": "wan2.1_i2v_480p_14B_fp8_e4m3fn.safetensors",
    "lightx2v": "Wan21_T2V_14B_lightx2v_cfg_step_distill_lora_rank32.safetensors",
}


def _fast_model() -> list[Node]:
    loaders = _pack_loaders("multitalk")
    loaders[1].inputs["model"] = FAST_FILES["dit_fp8"]
    return loaders + [
        Node(15, "MultiTalkLoraLoader", "4-step LoRA (lightx2v)", 1, 300,
             {"model": Out(11), "lora": FAST_FILES["lightx2v"], "strength": 1.0, "mode": "merged"}, "Models"),
        Node(16, "MultiTalkModelOptions", "Speed and memory", 1, 380,
             {"model": Out(15), "block_swap": "auto", "guidance_batch": "auto", "fp8_matmul": True}, "Models"),
    ]


def _sampler_options() -> Node:
    return Node(31, "MultiTalkSamplerOptions", "Few-step preset", 3, 40, {"preset": "lightx2v_4step"}, "Generate")


def fast_4step() -> Workflow:
    nodes = [Node(1, "LoadImage", "Reference image", 0, 60, {"image": "portrait.png"}, "Inputs"),
             *_voices(["speech.wav"]), *_fast_model(), _audio_encode(1, "parallel"), _speakers(),
             *_prompt_and_clip("A person talks to the camera in a bright room, natural expressions."),
             _sampler_options(),
             _sampler(model=Out(16), options=Out(31), steps=4, shift=5.0, text_scale=1.0, audio_scale=2.0,
                      sampler="lcm"),
             *_outputs("fast_4step")]
    note = ("**Start here (fast: 4 steps).**\n1. *Reference image*: pick the picture.\n2. *Speaker 1 voice*: "
            "pick the recording.\n3. Press **Run**.\nThe lightx2v LoRA runs 4 steps x 2 passes instead of 40 x 3 "
            "(preset: its timesteps, sampler, text 1 / audio 2). fp8 and block swap fit 24 GB. More: "
            "docs/sampling.md." + _models_note("multitalk").replace(MODEL_FILES["dit"], FAST_FILES["dit_fp8"])
            .replace("`audio_encoders/", f"`loras/{FAST_FILES['lightx2v']}`, `audio_encoders/"))
    return Workflow("multitalk_fast_4step", nodes, [Note(note, 0, 0)])


FAST_WORKFLOWS = (fast_4step,)
