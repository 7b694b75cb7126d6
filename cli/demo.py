"""`python -m comfyui_multitalk demo`: the shipped two-speaker workflow, end to end, on tiny
random weights written to a temporary folder (no downloads, no GPU, about a minute);
`--family anytalker` runs the AnyTalker two-speaker workflow on tiny AnyTalker weights."""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Callable

from .demo_media import write_demo_media
from .native_nodes import RunContext
from .run import run_workflow_file
from .tiny_weights import write_tiny_weights
from .workflow_files import shipped_api_workflow

DEMO_WORKFLOW = "multitalk_two_speakers"
DEMO_WORKFLOWS = {"multitalk": DEMO_WORKFLOW, "anytalker": "anytalker_two_speakers"}
NOISE_NOTE = ("The picture is noise: these are tiny random weights, which exercise every step of the pipeline "
              "but know nothing about faces. For real talking videos use the released weights (see README.md).")


@dataclass(frozen=True)
class DemoSettings:
    seconds: float = 1.4  # of dialogue: speaker 1, then speaker 2
    resolution: str = "120p"
    steps: int = 4
    window: int = 21  # 35 frames = 2 windows of 21 overlapping by 5: shows how long videos are chained
    motion_frames: int = 5
    family: str = "multitalk"  # or "anytalker": the AnyTalker two-speaker workflow, one pass over the audio


def demo_assignments(weights, media, settings: DemoSettings) -> list[str]:
    """The --set overrides that point the shipped workflow at the demo's files and draft settings."""
    if settings.family == "anytalker":
        return anytalker_assignments(weights, media, settings)
    return [
        f"wav2vec2.model={weights.wav2vec}",
        f"MultiTalk model.model={weights.dit}",
        f"MultiTalk model.audio_weights={weights.audio_weights}",
        f"Text encoder.text_encoder={weights.text_encoder}",
        f"CLIP vision.clip_vision={weights.clip_vision}",
        f"VAE.vae={weights.vae}",
        f"Reference image.image={media.speaker_masks[0]}",  # speaker 1 painted on the reference
        f"Speaker 2 mask.image={media.speaker_masks[1]}",
        f"Speaker 1 voice.audio={media.voices[0]}",
        f"Speaker 2 voice.audio={media.voices[1]}",
        "Prompt.positive=Two people sit side by side and talk to each other.",
        f"Speakers.resolution={settings.resolution}",
        f"Sampler.steps={settings.steps}",
        f"Sampler.window_frames={settings.window}",
        f"Sampler.motion_frames={settings.motion_frames}",
    ]


def anytalker_assignments(weights, media, settings: DemoSettings) -> list[str]:
    """The AnyTalker workflow on the tiny AnyTalker files; the faces boxed where the picture draws them."""
    from .demo_media import face_boxes

    boxes = "\n".join(", ".join(f"{v:.0f}" for v in box) for box in face_boxes())
    return [
        f"wav2vec2.model={weights.anytalker_wav2vec}",
        f"AnyTalker model.model={weights.anytalker_dit}",
        f"Text encoder.text_encoder={weights.text_encoder}",
        f"CLIP vision.clip_vision={weights.clip_vision}",
        f"VAE.vae={weights.vae}",
        f"Reference image.image={media.reference}",
        f"Speaker 1 voice.audio={media.voices[0]}",
        f"Speaker 2 voice.audio={media.voices[1]}",
        "Prompt.positive=Two people sit side by side and talk to each other.",
        f"Faces.resolution={settings.resolution}",
        f"Faces.boxes={boxes}",
        f"Sampler.steps={settings.steps}",
    ]


def run_demo(output: str = "multitalk_demo.mp4", keep: bool = False, settings: DemoSettings = DemoSettings(),
             log: Callable[[str], None] = print, overwrite: bool = False) -> list[str]:
    """Write tiny weights and inputs to a temporary folder, run the two-speaker workflow, and
    return the files written (the mp4 first, then the speaker preview and the timeline). An
    existing `output` gets a numbered sibling unless `overwrite`."""
    work = tempfile.mkdtemp(prefix="multitalk_demo_")
    try:
        log(f"Writing tiny random weights and a drawn two-person scene to {work} ...")
        weights = write_tiny_weights(os.path.join(work, "models"))
        media = write_demo_media(os.path.join(work, "input"), settings.seconds)
        context = RunContext(input_dir=os.path.join(work, "input"), output_dir=os.path.join(work, "output"),
                             output_video=output)
        workflow = shipped_api_workflow(DEMO_WORKFLOWS[settings.family])
        saved = run_workflow_file(workflow, demo_assignments(weights, media, settings),
                                  context, log, overwrite=overwrite)
    finally:
        if keep:
            log(f"Kept the weights, inputs and workflow files in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    _summary(saved, log)
    return sorted(saved, key=lambda path: not path.endswith(".mp4"))


def _summary(saved: list[str], log: Callable[[str], None]) -> None:
    from ..models.video_io import read_video_frames

    for path in saved:
        if path.endswith(".mp4"):
            frames, fps, seconds = read_video_frames(path)
            log(f"Video: {path} ({frames} frames at {fps:g} fps, soundtrack {seconds or 0:.2f} s)")
        else:
            log(f"Picture: {path}")
    log(NOISE_NOTE)
