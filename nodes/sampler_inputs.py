"""Unpacking the sampler's socket values (native or pack types) into plain tensors."""
from __future__ import annotations

from typing import Callable, Optional

import torch

from ..models.errors import GenerationInputError


def conditioning_tensor(conditioning, name: str) -> torch.Tensor:
    """CONDITIONING [[tensor [1, L, D], {...}], ...] -> [L, D] (the first entry)."""
    try:
        tensor = conditioning[0][0]
    except (TypeError, IndexError, KeyError) as exc:
        raise GenerationInputError(f"'{name}' is not a CONDITIONING (expected [[tensor, {{}}]]).") from exc
    if not torch.is_tensor(tensor) or tensor.dim() != 3:
        raise GenerationInputError(f"'{name}' conditioning holds {type(tensor).__name__}, not a [1, L, D] tensor.")
    return tensor[0].float()


def penultimate_features(output) -> torch.Tensor:
    """CLIP_VISION_OUTPUT -> [1, 257, 1280] of its last image (the reference)."""
    features = getattr(output, "penultimate_hidden_states", None)
    if features is None and hasattr(output, "__getitem__"):
        features = output["penultimate_hidden_states"]
    if features is None or features.dim() != 3:
        raise GenerationInputError("clip_vision_output has no penultimate_hidden_states [N, 257, 1280]: connect "
                                   "a CLIP Vision Encode of the reference image (crop: none).")
    return features[-1:].float()


def fit_reference(image: torch.Tensor, speakers) -> torch.Tensor:
    """IMAGE -> [H, W, 3] at the speaker layout's bucketed size (same resize + centre crop)."""
    from ..models.speakers.geometry import resize_crop_image

    frame = image[:1]
    target = (speakers.height, speakers.width)
    if tuple(frame.shape[1:3]) != target:
        frame = resize_crop_image(frame, target)
    return frame[0].float()


def clip_encoder_for(clip_vision) -> Optional[Callable[[torch.Tensor], torch.Tensor]]:
    """A frame -> [1, 257, 1280] function over a CLIP vision model (ours or native), or None."""
    if clip_vision is None:
        return None
    return lambda frame: penultimate_features(clip_vision.encode_image(frame, crop=False))
