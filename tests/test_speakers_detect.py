"""Automatic placement: face detection on the sample photo, ordering, fallbacks, mixing."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from comfyui_multitalk.models.speakers import (Box, Face, body_region, build_speaker_layout,
                                               detect_faces, detector_unavailable_reason)
from comfyui_multitalk.models.speakers.regions import region_centers


def _faces(*faces: Face):
    """A stand-in detector returning fixed faces (most prominent first), in bucket pixels."""
    return lambda pixels: list(faces)


def test_sample_photo_finds_both_people_left_to_right(samples_dir):
    path = samples_dir / "two_speakers.jpg"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    reason = detector_unavailable_reason()
    if reason is not None:
        pytest.skip(f"automatic detection unavailable: {reason}")
    pixels = np.asarray(Image.open(path).convert("RGB"))
    image = torch.from_numpy(pixels.astype(np.float32) / 255.0)[None]
    layout = build_speaker_layout(image, 2, "480p")
    assert layout.sources == ["auto", "auto"] and layout.notes == []
    assert (layout.width, layout.height) == (768, 512)
    # Face centres read off the 768x512 bucketed photo: the man ~(310, 105), the woman ~(480, 150).
    assert float(layout.masks[0, 105, 310]) == 1.0
    assert float(layout.masks[1, 150, 480]) == 1.0
    centers = region_centers(layout.masks)
    assert float(centers[0, 1]) < float(centers[1, 1])
    assert float(layout.masks.sum(0).max()) == 1.0


def test_blank_image_falls_back_to_strips_with_a_note():
    image = torch.full((1, 480, 640, 3), 0.5)
    layout = build_speaker_layout(image, 3, "480p")
    assert layout.sources == ["strip", "strip", "strip"]
    assert any("Found 0 people for 3" in note and "strips" in note for note in layout.notes)
    centers = region_centers(layout.masks)
    assert centers[0, 1] < centers[1, 1] < centers[2, 1]
    assert detect_faces(np.full((200, 300, 3), 128, dtype=np.uint8)) == []


def test_most_prominent_faces_are_used_and_ordered_left_to_right():
    image = torch.rand(1, 640, 640, 3)
    detector = _faces(Face(450, 100, 60, 60, 50), Face(100, 120, 60, 60, 40), Face(300, 500, 20, 20, 9))
    layout = build_speaker_layout(image, 2, "480p", detect=detector)
    assert layout.sources == ["auto", "auto"]
    assert float(layout.masks[0, 150, 130]) == 1 and float(layout.masks[1, 130, 480]) == 1
    assert any("Found 3 people for 2" in note for note in layout.notes)


def test_fewer_people_than_tracks_uses_strips():
    image = torch.rand(1, 640, 640, 3)
    layout = build_speaker_layout(image, 2, "480p", detect=_faces(Face(300, 100, 60, 60, 30)))
    assert layout.sources == ["strip", "strip"]
    assert any("Found 1 people for 2" in note for note in layout.notes)


def test_mixed_mask_and_auto_skips_the_face_already_taken():
    image = torch.rand(1, 640, 640, 3)
    left_face, right_face = Face(100, 100, 60, 60, 40), Face(450, 100, 60, 60, 50)
    mask = torch.zeros(1, 640, 640)
    mask[0, 50:640, 0:300] = 1  # speaker 2 is the person on the left
    layout = build_speaker_layout(image, 2, "480p", masks=[None, mask],
                                  detect=_faces(right_face, left_face))
    assert layout.sources == ["auto", "mask"]
    assert float(layout.masks[0, 130, 480]) == 1 and float(layout.masks[1, 130, 130]) == 1


def test_body_region_rule():
    region = body_region(Face(100, 50, 40, 40, 10), 400, 300)
    rows, cols = torch.nonzero(region, as_tuple=True)
    # 4 face widths around the face centre (120), half a face above, 7 faces below the top
    assert (int(cols.min()), int(cols.max()) + 1) == (40, 200)
    assert (int(rows.min()), int(rows.max()) + 1) == (30, 330)


def test_boxes_and_auto_mix():
    image = torch.rand(1, 640, 640, 3)
    layout = build_speaker_layout(image, 2, "480p", boxes=[None, Box(0.5, 0.0, 0.5, 1.0)],
                                  detect=_faces(Face(100, 100, 60, 60, 40)))
    assert layout.sources == ["auto", "box"]
    assert float(layout.masks[0, 130, 130]) == 1 and float(layout.masks[1, 10, 630]) == 1
