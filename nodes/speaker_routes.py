"""The speaker editor's server route: the Speakers node's layout for the pictures chosen in the
browser, before anything runs.

POST /multitalk/speakers/layout with the node's settings and the Load Image file names that feed
its image and mask inputs; the answer is the layout the node would build, automatic detection
included (models/speakers/summary.py), or {"ok": false, "error": ...} with the message the node
would raise. Registered on ComfyUI's server through comfy_bridge.register_routes.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Callable, Optional

import numpy as np
import torch

from ..models.errors import MultiTalkError, SpeakerInputError
from ..models.speakers.summary import layout_summary
from . import comfy_bridge
from .speaker_nodes import MASK_INPUTS, place_speakers

ROUTE = "/multitalk/speakers/layout"
UNREADABLE_MASK = "connected"  # a mask input fed by something other than a Load Image
logger = logging.getLogger("MultiTalk")


def load_picture(path: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(IMAGE [1,H,W,3], MASK [1,H,W]) of a picture file exactly as ComfyUI's Load Image gives them:
    EXIF-rotated, mask = 1 - alpha, or an empty 64x64 mask when the picture has no alpha."""
    from PIL import Image, ImageOps

    with Image.open(path) as opened:
        picture = ImageOps.exif_transpose(opened)
        rgb = np.asarray(picture.convert("RGB"), dtype=np.float32) / 255.0
        if "A" in picture.getbands():
            mask = 1.0 - np.asarray(picture.getchannel("A"), dtype=np.float32) / 255.0
        else:
            mask = np.zeros((64, 64), dtype=np.float32)
    return torch.from_numpy(rgb)[None], torch.from_numpy(mask)[None]


def _masks(entries: list, resolve: Callable[[str], str], notes: list[str]) -> tuple[list, int]:
    """(the masks the editor can read, the highest connected mask input)."""
    masks: list[Optional[torch.Tensor]] = []
    last = 0
    for k, entry in enumerate(list(entries)[:MASK_INPUTS], start=1):
        last = k if entry else last
        if entry == UNREADABLE_MASK:  # counted as connected; its region is only known when it runs
            notes.append(f"mask_{k} comes from a node the editor cannot read: speaker {k} is shown as automatic "
                         "here and takes that mask when the workflow runs.")
        masks.append(load_picture(resolve(entry))[1] if entry and entry != UNREADABLE_MASK else None)
    return masks + [None] * (MASK_INPUTS - len(masks)), last


def speakers_layout(body: dict, resolve: Callable[[str], str] = comfy_bridge.input_image_path) -> dict:
    """The editor's answer for one request body (see the module docstring)."""
    notes: list[str] = []
    try:
        if not body.get("image"):
            raise SpeakerInputError("Connect a Load Image to the Speakers node's image input to place speakers here.")
        image = load_picture(resolve(str(body["image"])))[0]
        masks, last_mask = _masks(body.get("masks") or [], resolve, notes)
        layout = place_speakers(image, int(body.get("num_speakers") or 0), str(body.get("resolution") or "480p"),
                                str(body.get("boxes") or ""), str(body.get("overlap") or "nearest_center"),
                                int(body["tracks"]) if body.get("tracks") else None, masks, last_mask)
    except (MultiTalkError, OSError) as error:  # what the node would say; an unreadable picture file
        return {"ok": False, "error": str(error)}
    summary = layout_summary(layout)
    summary["notes"] = notes + summary["notes"]
    return summary


def register(routes) -> None:
    """Add the route to ComfyUI's route table (aiohttp comes with ComfyUI)."""
    from aiohttp import web

    @routes.post(ROUTE)
    async def speakers_layout_route(request):
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"ok": False, "error": "The request body is not JSON."}, status=400)
        # Detection takes up to a second on a big picture: off the server's event loop.
        result = await asyncio.get_running_loop().run_in_executor(None, speakers_layout, body)
        return web.json_response(result)
