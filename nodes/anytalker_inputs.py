"""The sampler's sockets -> an AnyTalker job for the shared generator (models/anytalker/sampling.py).

Which settings mean what for AnyTalker: text_scale is its one guidance scale (official 4.5);
audio_scale and routing do not apply; shift 0 = the official 3 at 480p, 5 at 720p; sampler unipc
is the official solver; mode single = the official one pass over the whole audio, multitalk /
infinitetalk = the pack's windowed long video.
"""
from __future__ import annotations

from functools import partial
from typing import Any, Callable

import torch

from ..models.anytalker.layout import AUTO_SHIFT, FACE_LAYOUT
from ..models.anytalker.pipeline import Identities, identities, image_tensor, resized_image
from ..models.anytalker.sampling import AnyTalkerGenerator
from ..models.errors import GenerationInputError
from ..models.sampling.generate import GenerationInputs, Hooks
from ..models.sampling.plan import default_motion_frames
from ..models.sampling.settings import SamplerSettings
from .sampler_inputs import conditioning_tensor, penultimate_features

LONG_ONE_PASS = 241  # frames (10 s at 24 fps): beyond this a note suggests the windowed modes


def clip_face_encoder(clip_vision: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    """[3, 1, h, w] in [-1, 1] (a face crop, as the official hands CLIP) -> [1, 257, 1280]."""
    def encode(crop: torch.Tensor) -> torch.Tensor:
        image = crop[:, 0].permute(1, 2, 0).add(1).div(2)[None]  # IMAGE [1, h, w, 3]
        return penultimate_features(clip_vision.encode_image(image, crop=False))
    return encode


def _check(speakers: Any, image: torch.Tensor, clip_vision: Any, timelines: dict) -> None:
    if getattr(speakers, "family", None) != FACE_LAYOUT:
        raise GenerationInputError("An AnyTalker model needs a face layout: connect MultiTalk Audio Encode's "
                                   "audio_features (made with wav2vec2-base-960h) to MultiTalk Speakers' audio input.")
    if clip_vision is None:
        raise GenerationInputError("AnyTalker encodes every face crop with CLIP vision: connect clip_vision to the "
                                   "sampler (the CLIP vision model of the CLIP Vision Encode node).")
    used = sorted(name for name, value in timelines.items() if value is not None)
    if used:
        raise GenerationInputError(f"{', '.join(used)} work with the MultiTalk family only; disconnect them for "
                                   "an AnyTalker model.")
    if tuple(image.shape[1:3]) != speakers.source_size:
        raise GenerationInputError(f"The image is {image.shape[2]}x{image.shape[1]} but the faces were placed on a "
                                   f"{speakers.source_size[1]}x{speakers.source_size[0]} picture: connect MultiTalk "
                                   "Speakers' image output to the sampler's image.")


def _window(mode: str, frames: int, max_frames: int, window_frames: int) -> int:
    """single: the whole clip (the official one pass), capped by max_frames and rounded up to 4n+1."""
    if mode != "single":
        return window_frames
    wanted = min(frames, max_frames) if max_frames > 0 else frames
    return max(5, (wanted + 2) // 4 * 4 + 1)


def anytalker_job(values: dict, speakers: Any, audio: Any, clip_vision: Any, timelines: dict) -> tuple:
    """(SamplerSettings, GenerationInputs, generator factory, notes) from the sampler's inputs."""
    image = values["image"]
    _check(speakers, image, clip_vision, timelines)
    mode = values["mode"]
    settings = SamplerSettings(
        steps=values["steps"], shift=values["shift"] or AUTO_SHIFT[speakers.resolution],
        text_scale=values["text_scale"], audio_scale=values["audio_scale"], seed=values["seed"],
        solver=values["sampler"], apg=values["apg"], mode=mode,
        window=_window(mode, audio.num_frames, values["max_frames"], values["window_frames"]),
        motion_frames=values["motion_frames"] or default_motion_frames(mode),
        colour_strength=values["color_correction"], max_frames=values["max_frames"],
        batch_guidance=values["batch_guidance"])
    pixels = image_tensor(image[0])  # [3, H, W] in [-1, 1]: the picture at its own size
    size = (speakers.height, speakers.width)
    who = identities(pixels, speakers.faces, size, clip_face_encoder(clip_vision))
    inputs = GenerationInputs(
        positive=conditioning_tensor(values["positive"], "positive"),
        negative=conditioning_tensor(values["negative"], "negative"),
        reference=resized_image(pixels, size).permute(1, 2, 0).add(1).div(2),  # the official VAE input, unclamped
        clip_features=penultimate_features(values["clip_vision_output"]),
        audio_features=list(audio.features), masks=who.face_masks)
    notes = []
    if mode == "single" and settings.window > LONG_ONE_PASS:
        notes.append(f"One pass over {settings.window} frames (the official AnyTalker way): memory and time grow with "
                     "the length; mode multitalk or infinitetalk generates windows instead (the pack's extension).")
    elif mode != "single":
        notes.append(f"AnyTalker long video in {settings.window}-frame windows ({mode} mode) is the pack's extension: "
                     "the official generates the whole clip in one pass.")
    return settings, inputs, partial(_generator, identities=who), notes


def _generator(model: Any, vae: Any, inputs: GenerationInputs, settings: SamplerSettings, hooks: Hooks,
               identities: Identities) -> AnyTalkerGenerator:
    return AnyTalkerGenerator(model, vae, inputs, identities, settings, hooks)
