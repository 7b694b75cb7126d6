"""CLIP vision (Wan I2V uses open_clip's ViT-H/14 visual tower) on transformers' CLIP classes.

`WanClipVision.encode_image(image)` returns a `ClipVisionOutput` shaped like ComfyUI's
CLIP_VISION_OUTPUT: `penultimate_hidden_states` [N, 257, 1280] is what Wan consumes (the
official pipeline stops after 31 of 32 blocks, no post-norm), plus `last_hidden_state` and
`image_embeds` (post-norm class token through the projection) when the file has a projection.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from ..errors import EncoderInputError
from ..weights import empty_weights, materialize, open_weights
from .clip_layout import canonical_state_dict, infer_config
from .devices import resident

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass
class ClipVisionOutput:
    """Like comfy.clip_vision.Output: attributes, also readable as out["name"]."""

    last_hidden_state: torch.Tensor  # [N, 1 + grid, D]
    penultimate_hidden_states: torch.Tensor  # [N, 1 + grid, D]
    image_embeds: Optional[torch.Tensor] = None  # [N, projection_dim]

    def __getitem__(self, key: str):
        return getattr(self, key)

    def __setitem__(self, key: str, value) -> None:
        setattr(self, key, value)

    def __contains__(self, key: str) -> bool:
        return getattr(self, key, None) is not None


def preprocess(image: torch.Tensor, size: int, crop: bool = False) -> torch.Tensor:
    """IMAGE [N, H, W, C] in 0..1 -> normalised pixels [N, 3, size, size] (float32).

    The official path: the whole frame in [-1, 1] resized to size x size (bicubic, no
    antialias, no crop), mapped back to [0, 1], then CLIP mean/std. `crop=True` first takes
    the centred square, as ComfyUI's CLIPVisionEncode "center" option does.
    """
    if image.ndim != 4 or image.shape[-1] < 3:
        raise EncoderInputError(f"CLIP vision needs an IMAGE [N, H, W, 3]; got shape {list(image.shape)}. "
                                 "Connect an RGB picture (e.g. Load Image's IMAGE output).")
    x = image[..., :3].movedim(-1, 1).float()  # [N, 3, H, W]
    if crop:
        h, w = x.shape[-2:]
        side = min(h, w)
        x = x[..., (h - side) // 2:(h - side) // 2 + side, (w - side) // 2:(w - side) // 2 + side]
    x = F.interpolate(x * 2.0 - 1.0, size=(size, size), mode="bicubic", align_corners=False)
    x = x.mul(0.5).add(0.5)
    mean = torch.tensor(CLIP_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


@dataclass
class WanClipVision:
    """A transformers CLIP vision model with the official preprocessing.

    The weights live on `offload_device` and visit `device` for each encode.
    """

    model: torch.nn.Module
    device: torch.device
    dtype: torch.dtype
    offload_device: torch.device = torch.device("cpu")

    @property
    def image_size(self) -> int:
        return self.model.config.image_size

    @torch.no_grad()
    def encode_image(self, image: torch.Tensor, crop: bool = False) -> ClipVisionOutput:
        """IMAGE [N, H, W, 3] 0..1 -> ClipVisionOutput (tensors float32 on the CPU).

        Same call as ComfyUI's CLIP vision object, so native CLIPVisionEncode can use it.
        """
        with resident(self.model, self.device, self.offload_device):
            pixels = preprocess(image.to(self.device), self.image_size, crop).to(self.dtype)
            out = self.model(pixel_values=pixels, output_hidden_states=True)
        embeds = getattr(out, "image_embeds", None)
        return ClipVisionOutput(
            last_hidden_state=out.last_hidden_state.float().cpu(),
            penultimate_hidden_states=out.hidden_states[-2].float().cpu(),
            image_embeds=embeds.float().cpu() if embeds is not None else None,
        )


def load_clip_vision(path: str, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                     num_heads: int | None = None, offload_device: torch.device | str = "cpu") -> WanClipVision:
    """Build the CLIP vision tower from a file in either layout, cast to `dtype`.

    Heads are not readable off the weights: the released widths are known (1280 -> 16 for
    ViT-H/14); pass `num_heads` for other sizes.
    """
    from transformers import CLIPVisionModel, CLIPVisionModelWithProjection

    state = canonical_state_dict(open_weights(path, EncoderInputError, allow_folder=False), path, dtype)
    config = infer_config(state, num_heads)
    has_projection = "visual_projection.weight" in state
    with empty_weights():  # position_ids, a non-persistent buffer, keeps its computed values
        model = (CLIPVisionModelWithProjection if has_projection else CLIPVisionModel)(config)
    if not any(k.startswith("vision_model.") for k in model.state_dict()):  # transformers 5 naming
        state = {k.removeprefix("vision_model."): v for k, v in state.items()}
    materialize(model, state, "CLIP vision", EncoderInputError, path)
    offload = torch.device(offload_device)
    return WanClipVision(model.to(offload), torch.device(device), dtype, offload)
