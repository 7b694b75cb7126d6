"""Speakers: which audio track drives which region of the reference image.

build_speaker_layout() buckets the reference image exactly as the sampler will, places each
speaker from a MASK, a box or automatic face detection, resolves overlaps and returns a
SpeakerLayout whose latent_masks() is the DiT's ref_target_masks. render_preview() draws
the binding picture. See docs/speakers.md.
"""
from .build import MAX_TRACKS, build_speaker_layout, prepare_user_mask, resolve_speaker_count
from .detect import Face, body_region, detect_faces, detector_unavailable_reason
from .geometry import (BUCKETS, RESOLUTIONS, choose_bucket, crop_offsets, resize_crop_image,
                       resize_crop_masks, resized_size, to_grid)
from .layout import SOURCES, SpeakerLayout
from .preview import SPEAKER_COLORS, render_preview, save_preview_png, speaker_color, tint
from .regions import OVERLAP_RULES, Box, box_to_mask, parse_boxes, resolve_overlaps, strip_mask

__all__ = [
    "BUCKETS", "Box", "Face", "MAX_TRACKS", "OVERLAP_RULES", "RESOLUTIONS", "SOURCES", "SPEAKER_COLORS",
    "SpeakerLayout", "body_region", "box_to_mask", "build_speaker_layout", "choose_bucket",
    "crop_offsets", "detect_faces", "detector_unavailable_reason", "parse_boxes", "prepare_user_mask",
    "render_preview", "resize_crop_image", "resize_crop_masks", "resized_size", "resolve_overlaps",
    "resolve_speaker_count", "save_preview_png", "speaker_color", "strip_mask", "tint", "to_grid",
]
