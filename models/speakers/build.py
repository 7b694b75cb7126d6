"""Build a SpeakerLayout from a reference image and per-speaker masks, boxes or automatic."""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..dit.routing import MAX_SPEAKERS
from ..errors import SpeakerInputError
from .detect import Face, body_region, detect_faces, detector_unavailable_reason
from .geometry import (LATENT_STRIDE, TOKEN_STRIDE, check_reference_size, choose_bucket, image_to_uint8,
                       resize_crop_image, resize_crop_masks, to_grid)
from .layout import SpeakerLayout
from .regions import Box, box_to_mask, resolve_overlaps, strip_mask

MAX_TRACKS = max(MAX_SPEAKERS.values())
FaceDetector = Callable[[np.ndarray], list[Face]]
Region = tuple[str, torch.Tensor]  # (source, 0/1 mask [H,W])


def resolve_speaker_count(requested: int, audio_tracks: Optional[int],
                          last_mask: int = 0, box_lines: int = 0) -> int:
    """The number of speakers, checked against every source that states one.

    requested: the node's num_speakers (0 = infer); audio_tracks: tracks of the audio input;
    last_mask: highest connected mask_k input (0 = none); box_lines: lines in the boxes text.
    Without audio or a requested count, the masks/boxes decide; with none of them, 2.
    """
    if requested < 0:
        raise SpeakerInputError(f"num_speakers is {requested}: use 0 (take the count from the audio, masks or "
                                f"boxes) or a count from 1 to {MAX_TRACKS}.")
    if requested and audio_tracks and requested != audio_tracks:
        raise SpeakerInputError(
            f"num_speakers is {requested} but the audio input has {audio_tracks} tracks: set "
            f"num_speakers to {audio_tracks} or 0 (take the count from the audio)."
        )
    count = audio_tracks or requested or max(last_mask, box_lines) or 2
    origin = f"{audio_tracks} audio tracks" if audio_tracks else f"{count} speakers"
    if box_lines > count:
        raise SpeakerInputError(
            f"{box_lines} box lines were given for {origin}: write one line per speaker "
            "(a blank line or 'auto' for automatic placement)."
        )
    if last_mask > count:
        raise SpeakerInputError(
            f"mask_{last_mask} is connected but there are {origin}: connect at most one mask "
            "per speaker, in track order."
        )
    if not 1 <= count <= MAX_TRACKS:
        raise SpeakerInputError(f"{count} speakers requested: the pack handles 1 to {MAX_TRACKS}; use at "
                                f"most {MAX_TRACKS} audio tracks, masks or box lines.")
    return count


def prepare_user_mask(mask: torch.Tensor, height: int, width: int,
                      track: int) -> tuple[torch.Tensor, list[str]]:
    """A MASK input -> 0/1 [H,W] at the reference size (>= 0.5 counts), with notes."""
    notes = []
    mask = mask.detach().float().cpu()
    if mask.dim() == 4 and mask.shape[-1] == 1:
        mask = mask[..., 0]
    if mask.dim() == 3:
        if mask.shape[0] > 1:
            notes.append(f"Speaker {track}: mask_{track} holds {mask.shape[0]} masks; the first was used.")
        mask = mask[0]
    if mask.dim() != 2:
        raise SpeakerInputError(f"mask_{track} has shape {tuple(mask.shape)}: expected a MASK [1,H,W]; connect "
                                "a MASK output (e.g. Load Image's mask, painted in the mask editor).")
    if float(mask.max()) <= 0:
        raise SpeakerInputError(
            f"mask_{track} is empty (all zero): paint speaker {track}'s region, or disconnect "
            "it for automatic placement."
        )
    if tuple(mask.shape) != (height, width):
        notes.append(
            f"Speaker {track}: mask_{track} is {mask.shape[1]}x{mask.shape[0]}, the image "
            f"{width}x{height}; the mask was resized (stretched) to the image."
        )
        mask = F.interpolate(mask[None, None], size=(height, width), mode="nearest")[0, 0]
    binary = (mask >= 0.5).float()
    if float(binary.sum()) == 0:
        raise SpeakerInputError(
            f"mask_{track} has no pixel >= 0.5 (max {float(mask.max()):.2f}): paint the region fully."
        )
    return binary, notes


def _user_regions(masks: Sequence[Optional[torch.Tensor]], boxes: Sequence[Optional[Box]],
                  count: int, size: tuple[int, int], notes: list[str]) -> dict[int, Region]:
    """Speakers given a mask or a box: index -> (source, mask [H,W] at the reference size)."""
    regions = {}
    for index in range(count):
        mask = masks[index] if index < len(masks) else None
        box = boxes[index] if index < len(boxes) else None
        if mask is not None:
            binary, mask_notes = prepare_user_mask(mask, size[0], size[1], index + 1)
            regions[index] = ("mask", binary)
            notes.extend(mask_notes)
            if box is not None:
                notes.append(f"Speaker {index + 1}: both mask_{index + 1} and a box were given; "
                             "the mask was used.")
        elif box is not None:
            binary, note = box_to_mask(box, size[0], size[1], index + 1)
            regions[index] = ("box", binary)
            notes.extend([note] if note else [])
    return regions


def _auto_regions(bucket_image: torch.Tensor, auto: list[int], taken: torch.Tensor, count: int,
                  size: tuple[int, int], detect: FaceDetector, notes: list[str]) -> dict[int, Region]:
    """Automatic speakers: detected people left to right, else equal strips (bucketed [H,W])."""
    height, width = bucket_image.shape[1:3]
    faces = detect(image_to_uint8(bucket_image))
    free = [f for f in faces if not _inside(taken, f.center)]
    if len(free) >= len(auto):
        if len(free) > len(auto):
            notes.append(f"Found {len(free)} people for {len(auto)} automatic speaker(s); "
                         "used the most prominent.")
        chosen = sorted(free[:len(auto)], key=lambda f: f.center[0])
        return {index: ("auto", body_region(face, height, width)) for index, face in zip(auto, chosen)}
    reason = detector_unavailable_reason() if detect is detect_faces else None
    why = f" ({reason}; install opencv-python-headless<5 for detection)" if reason else ""
    who = f"speaker {auto[0] + 1} uses" if len(auto) == 1 else \
        f"speakers {', '.join(str(i + 1) for i in auto)} use"
    notes.append(
        f"Found {len(free)} people for {len(auto)} automatic speaker(s){why}: {who} equal "
        "vertical strips with a 5% margin. Paint masks or type boxes if that is not where they are."
    )
    strips = torch.stack([strip_mask(index, count, size[0], size[1]) for index in auto])
    bucketed = resize_crop_masks(strips, (height, width))
    return {index: ("strip", bucketed[i]) for i, index in enumerate(auto)}


def _inside(mask: torch.Tensor, point: tuple[float, float]) -> bool:
    """Whether an (x, y) point lies on a 1 of a [H,W] mask (points off the image do not)."""
    col, row = int(point[0]), int(point[1])
    return 0 <= row < mask.shape[0] and 0 <= col < mask.shape[1] and bool(mask[row, col] > 0)


def _check_token_regions(masks: torch.Tensor, sources: list[str]) -> None:
    """Each speaker needs at least one token of its own, or the DiT would average nothing."""
    height, width = masks.shape[1:]
    latent = to_grid(masks, (height // LATENT_STRIDE, width // LATENT_STRIDE))
    tokens = to_grid(latent, (height // TOKEN_STRIDE, width // TOKEN_STRIDE))  # as the DiT does
    for index in range(masks.shape[0]):
        if float(tokens[index].sum()) == 0:
            raise SpeakerInputError(
                f"Speaker {index + 1}'s region ({sources[index]}) covers no 16x16 cell of the "
                f"{masks.shape[2]}x{masks.shape[1]} bucketed image after the crop and the overlap "
                "rule: make it larger or move it inside the picture."
            )


def build_speaker_layout(image: torch.Tensor, num_speakers: int, resolution: str = "480p",
                         masks: Sequence[Optional[torch.Tensor]] = (),
                         boxes: Sequence[Optional[Box]] = (),
                         overlap: str = "nearest_center",
                         detect: FaceDetector = detect_faces) -> SpeakerLayout:
    """Bucket the reference image and place every speaker (mask > box > automatic).

    masks/boxes: per speaker in track order (None or missing = automatic). detect: the face
    detector (RGB uint8 [H,W,3] -> faces, most prominent first); tests pass stand-ins.
    """
    if not 1 <= num_speakers <= MAX_TRACKS:
        raise SpeakerInputError(f"{num_speakers} speakers requested: the pack handles 1 to {MAX_TRACKS}; set "
                                f"num_speakers from 1 to {MAX_TRACKS}.")
    size = image_to_uint8(image).shape[:2]  # validates the IMAGE shape
    target = choose_bucket(size[0], size[1], resolution)
    notes: list[str] = check_reference_size(size[0], size[1], target)
    bucket_image = resize_crop_image(image, target)  # [1,H,W,3]
    if num_speakers == 1:
        if any(m is not None for m in masks[:1]) or any(b is not None for b in boxes[:1]):
            notes.append("One speaker: track 1 drives the whole frame (as the official); "
                         "the mask/box is not needed.")
        return SpeakerLayout(bucket_image, target[0], target[1], torch.ones(1, *target), ["auto"],
                             notes, resolution, (int(size[0]), int(size[1])), overlap)
    user = _user_regions(masks, boxes, num_speakers, size, notes)
    regions: dict[int, Region] = {}
    if user:
        bucketed = resize_crop_masks(torch.stack([m for _, m in user.values()]), target)
        regions = {index: (source, bucketed[i]) for i, (index, (source, _)) in enumerate(user.items())}
    taken = torch.zeros(target)
    for _, region in regions.values():
        taken = torch.maximum(taken, region)
    auto = [index for index in range(num_speakers) if index not in regions]
    if auto:
        regions.update(_auto_regions(bucket_image, auto, taken, num_speakers, size, detect, notes))
    sources = [regions[i][0] for i in range(num_speakers)]
    stacked = resolve_overlaps(torch.stack([regions[i][1] for i in range(num_speakers)]), overlap)
    _check_token_regions(stacked, sources)
    return SpeakerLayout(bucket_image, target[0], target[1], stacked, sources, notes, resolution,
                         (int(size[0]), int(size[1])), overlap)
