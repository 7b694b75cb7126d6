"""The official AnyTalker pipeline's model inputs and its one-pass sampling loop (FACTS.md §4, §7, §9).

Encoders are passed in as callables in the official tensor layout, so any CLIP / VAE / T5 can
serve (the pack's, ComfyUI's, or stubs in tests):
  encode_clip(image [3, 1, H, W] in [-1, 1]) -> [1, 257, 1280]  (whole image, then each face crop)
  encode_vae(video [3, F, h, w] in [-1, 1]) -> normalised latent [16, T, h/8, w/8]
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import GenerationInputError
from .faces import FaceRegions, crop_face
from .geometry import output_size
from .masks import dit_mask, expand_face_masks, token_masks
from .schedule import UniPCSampler, guide

ClipEncoder = Callable[[torch.Tensor], torch.Tensor]
VaeEncoder = Callable[[torch.Tensor], torch.Tensor]
StepCallback = Callable[[int, torch.Tensor, torch.Tensor, Optional[torch.Tensor]], None]


@dataclass
class AnyTalkerConditions:
    """Everything the model needs besides the latent and the timestep."""

    y: torch.Tensor  # [20, T, h, w]: dit mask channels, then the image latent
    clip_fea: torch.Tensor  # [1, 257, 1280] of the whole image
    faces: torch.Tensor  # [N, 257, 1280]: CLIP of each face crop, left to right
    face_masks: torch.Tensor  # [N, h/2, w/2] soft token masks (static in time)
    size: tuple[int, int]  # (height, width) of the video in pixels
    frames: int  # F = 4(T-1)+1 video frames


def image_tensor(image: torch.Tensor | np.ndarray) -> torch.Tensor:
    """RGB image [H, W, 3] (uint8, or float in 0..1) -> [3, H, W] in [-1, 1] as the official to_tensor."""
    x = torch.as_tensor(np.asarray(image))
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    if x.dim() != 3 or x.shape[-1] != 3:
        raise GenerationInputError(f"The image must be RGB [H, W, 3]; got {tuple(x.shape)}.")
    return x.permute(2, 0, 1).sub(0.5).div(0.5)


def resized_image(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[3, H, W] in [-1, 1] -> [3, h, w]: bicubic, not clamped (the official VAE input's first frame)."""
    return F.interpolate(image[None].float(), size=size, mode="bicubic")[0]


def vae_input(image: torch.Tensor, size: tuple[int, int], frames: int) -> torch.Tensor:
    """[3, H, W] in [-1, 1] -> [3, F, h, w]: the image bicubic-resized (no clamp), then zero frames."""
    first = resized_image(image, size)  # [3, h, w]
    return torch.cat([first[:, None], torch.zeros(3, frames - 1, *size)], dim=1)


@dataclass
class Identities:
    """Who is who: each identity's face features and masks, and the face regions of y."""

    faces: torch.Tensor  # [N, 257, 1280]: CLIP of each face crop, track order
    face_masks: torch.Tensor  # [N, h/16, w/16] soft token masks (static in time)
    face_regions: torch.Tensor  # [H, W] sum of the expanded face masks (the "dit mask" source)


def identities(image: torch.Tensor, faces: FaceRegions, size: tuple[int, int],
               encode_clip: ClipEncoder) -> Identities:
    """Face crops through CLIP and the expanded masks, from the image [3, H, W] in [-1, 1] at its own
    resolution and the video size (h, w) in pixels."""
    if faces.masks.shape[1:] != image.shape[1:]:
        raise GenerationInputError(f"Face masks are {tuple(faces.masks.shape[1:])} but the image is "
                                   f"{tuple(image.shape[1:])}: give masks at the image's own size.")
    expanded = expand_face_masks(faces.masks)
    features = [encode_clip(crop_face(image, box)[:, None]) for box in faces.boxes_xywh]
    return Identities(faces=torch.cat(features, dim=0).float(),
                      face_masks=token_masks(expanded, (size[0] // 16, size[1] // 16)),
                      face_regions=expanded.sum(dim=0))


def build_conditions(image: torch.Tensor | np.ndarray, faces: FaceRegions, frames: int, max_area: int,
                     encode_clip: ClipEncoder, encode_vae: VaeEncoder) -> AnyTalkerConditions:
    """The model's conditions from the image (full resolution) and its face regions (track order)."""
    pixels = image_tensor(image)
    height, width = output_size(tuple(pixels.shape[1:]), max_area)
    if faces.masks.shape[1:] != pixels.shape[1:]:
        raise GenerationInputError(f"Face masks are {tuple(faces.masks.shape[1:])} but the image is "
                                   f"{tuple(pixels.shape[1:])}: give masks at the image's own size.")
    clip_fea = encode_clip(pixels[:, None])
    latent = encode_vae(vae_input(pixels, (height, width), frames))
    who = identities(pixels, faces, (height, width), encode_clip)
    y = torch.cat([dit_mask(who.face_regions, (height // 8, width // 8), frames), latent.float().cpu()], dim=0)
    return AnyTalkerConditions(y=y, clip_fea=clip_fea, faces=who.faces, face_masks=who.face_masks,
                               size=(height, width), frames=frames)


def null_audio(audio: torch.Tensor) -> torch.Tensor:
    """The unconditional pass's audio: zeros for every identity (faces and masks stay)."""
    return torch.zeros_like(audio)


def initial_noise(conditions: AnyTalkerConditions, seed: int) -> torch.Tensor:
    """[16, T, h, w] fp32 from torch's CPU generator (the official draws on its device's generator)."""
    shape = (16, *conditions.y.shape[1:])
    return torch.randn(shape, generator=torch.Generator().manual_seed(int(seed)), dtype=torch.float32)


def sample(model: torch.nn.Module, conditions: AnyTalkerConditions, audio: torch.Tensor, context: torch.Tensor,
           context_null: torch.Tensor, noise: torch.Tensor, steps: int, shift: float, guide_scale: float,
           use_guidance: bool = True, on_step: Optional[StepCallback] = None) -> torch.Tensor:
    """The official denoising loop: per step a cond pass (prompt, audio, faces) and an uncond pass
    (negative prompt, zero audio, the same faces and masks), uncond + s (cond - uncond), UniPC.

    audio [N, F, 5, layers, C]; returns the final latent [16, T, h, w] (what the VAE decodes).
    `use_guidance` False is the official --cfg_zero (cond only). on_step(i, latent, cond, uncond)."""
    sampler = UniPCSampler(steps, shift)
    device, dtype = model.patch_embedding.weight.device, model.compute_dtype
    put = (lambda t: t.to(device, dtype))  # noqa: E731
    shared = dict(clip_fea=put(conditions.clip_fea), y=put(conditions.y)[None], faces=put(conditions.faces),
                  face_masks=put(conditions.face_masks))
    latent = noise.float()
    for i, t in enumerate(sampler.timesteps):
        x = put(latent)[None]
        with torch.no_grad():
            cond = model(x, t[None].to(device), [put(context)], audio=put(audio), **shared)[0].float().cpu()
            uncond = (model(x, t[None].to(device), [put(context_null)], audio=put(null_audio(audio)), **shared)[0]
                      .float().cpu() if use_guidance else None)
        if on_step is not None:
            on_step(i, latent, cond, uncond)
        velocity = guide(cond, uncond, guide_scale) if use_guidance else cond
        latent = sampler.step(latent[None], velocity[None], i)[0]
    return latent
