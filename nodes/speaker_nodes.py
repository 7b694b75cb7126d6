"""Speaker placement node: which audio track drives which person, shown before any GPU time."""
from __future__ import annotations

import logging
from typing import Optional

from ..models.anytalker.layout import build_face_layout
from ..models.audio.wav2vec_loader import WAV2VEC_ANYTALKER
from ..models.speakers import (MAX_TRACKS, OVERLAP_RULES, RESOLUTIONS, SpeakerLayout, build_speaker_layout,
                               parse_boxes, render_preview, resolve_speaker_count)
from .comfy_bridge import notes_ui, save_temp_images

logger = logging.getLogger("MultiTalk")

MASK_INPUTS = 4

TOOLTIPS = {
    "image": "Reference image (the first frame of the video).",
    "num_speakers": "Number of speakers. 0 = from the audio input, else from the masks/boxes given, "
                    "else 2. Must match the audio tracks.",
    "resolution": "Bucket table of the sampler: 480p or 720p (what the models were trained at). The image "
                  "is resized and centre-cropped to the nearest aspect ratio. 240p and 120p are draft sizes "
                  "for quick previews and CPU tests. AnyTalker: the pixel budget (480p = 832*480, 720p = "
                  "1280*720) at the picture's own aspect ratio, no crop.",
    "boxes": "One line per speaker in track order: 'x, y, width, height' in pixels of the reference "
             "image (or fractions 0..1). A blank line or 'auto' = automatic. mask_k wins over line k. "
             "AnyTalker: box the face (made square, as the official).",
    "overlap": "Who gets a pixel claimed by several speakers: the one whose region centre is nearest, "
               "the smaller region, or keep the overlap (official behaviour). MultiTalk family only.",
    "audio": "Speaker audio; its number of tracks sets the number of speakers (track k drives speaker k). "
             "AnyTalker audio (wav2vec2-base-960h) makes this a face layout: one face per track.",
}


def _mask_input(k: int) -> tuple:
    return ("MASK", {"tooltip": f"Region of speaker {k} (audio track {k}), e.g. painted in the mask "
                                f"editor (AnyTalker: paint the face). Wins over box line {k}. Leave unconnected "
                                "for a box or automatic."})


class MultiTalkSpeakers:
    DESCRIPTION = (
        "Places every speaker on the reference image: from a painted MASK, a box, or automatic face "
        "detection (left to right). Buckets and crops the image exactly as the sampler will, and shows "
        "the binding: each speaker's region tinted in its colour with its track number. With AnyTalker audio "
        "it places one face per track instead (paint or box the faces; automatic: the largest faces, left to "
        "right) on the whole picture, as the official AnyTalker."
    )
    CATEGORY = "MultiTalk/speakers"
    FUNCTION = "place"
    RETURN_TYPES = ("MULTITALK_SPEAKERS", "IMAGE", "IMAGE", "INT", "INT", "STRING")
    RETURN_NAMES = ("speakers", "preview", "image", "width", "height", "report")
    OUTPUT_TOOLTIPS = (
        "Speaker layout for the sampler: bucketed image, per-speaker masks, latent-grid masks.",
        "The bucketed image with each speaker's region tinted and numbered by audio track.",
        "The reference image resized and centre-cropped to the bucket the sampler uses (AnyTalker: the "
        "picture as is, which its CLIP features and face crops come from).",
        "Bucketed width in pixels (AnyTalker: the video's width).",
        "Bucketed height in pixels (AnyTalker: the video's height).",
        "Text report: bucket, each speaker's source and region, and any warnings.",
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        optional = {"audio": ("MULTITALK_AUDIO", {"tooltip": TOOLTIPS["audio"]})}
        optional.update({f"mask_{k}": _mask_input(k) for k in range(1, MASK_INPUTS + 1)})
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": TOOLTIPS["image"]}),
                "num_speakers": ("INT", {"default": 0, "min": 0, "max": MAX_TRACKS,
                                         "tooltip": TOOLTIPS["num_speakers"]}),
                "resolution": (list(RESOLUTIONS), {"default": "480p", "tooltip": TOOLTIPS["resolution"]}),
                "boxes": ("STRING", {"multiline": True, "default": "", "tooltip": TOOLTIPS["boxes"]}),
                "overlap": (list(OVERLAP_RULES), {"default": OVERLAP_RULES[0],
                                                  "tooltip": TOOLTIPS["overlap"]}),
            },
            "optional": optional,
        }

    def place(self, image, num_speakers=0, resolution="480p", boxes="", overlap="nearest_center",
              audio=None, **masks):
        mask_list = [masks.get(f"mask_{k}") for k in range(1, MASK_INPUTS + 1)]
        tracks = len(audio.features) if audio is not None else None
        faces = getattr(audio, "family", None) == WAV2VEC_ANYTALKER  # AnyTalker: one face per track
        layout = place_speakers(image, int(num_speakers), resolution, boxes, overlap, tracks, mask_list, faces=faces)
        for note in layout.notes:
            logger.warning("MultiTalkSpeakers: %s", note)
        preview = render_preview(layout.image, layout.masks)
        result = (layout, preview, layout.image, layout.width, layout.height, layout.describe())
        # The editor on the node (web/js/multitalk_speakers.js) shows the regions and the notes; the
        # preview picture is the `preview` output (and saved under this key for headless clients).
        ui = {PREVIEW_UI_KEY: save_temp_images(preview, "multitalk_speakers"), **notes_ui(layout.notes)}
        return {"ui": ui, "result": result}


PREVIEW_UI_KEY = "multitalk_speaker_preview"


def place_speakers(image, num_speakers: int, resolution: str, boxes: str, overlap: str,
                   tracks: Optional[int], masks: list, last_mask: int = 0, faces: bool = False) -> SpeakerLayout:
    """The node's layout from its inputs (also what the editor's server route previews).
    last_mask: the highest connected mask input, when more are connected than `masks` holds.
    faces: AnyTalker's face regions (the picture at its own size) instead of MultiTalk's bucketed regions."""
    box_list = parse_boxes(boxes)
    connected = [k for k, m in enumerate(masks, start=1) if m is not None] + [last_mask]
    count = resolve_speaker_count(num_speakers, tracks, max(connected), len(box_list))
    if faces:
        return build_face_layout(image, count, resolution, masks, box_list)
    return build_speaker_layout(image, count, resolution, masks, box_list, overlap)


NODE_CLASS_MAPPINGS = {"MultiTalkSpeakers": MultiTalkSpeakers}
NODE_DISPLAY_NAME_MAPPINGS = {"MultiTalkSpeakers": "MultiTalk Speakers (who is where)"}
