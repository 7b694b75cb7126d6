"""Boxes, strips, the overlap rule, user masks and speaker counts."""
from __future__ import annotations

import pytest
import torch

from comfyui_multitalk.models.errors import SpeakerInputError
from comfyui_multitalk.models.speakers import (Box, box_to_mask, build_speaker_layout, parse_boxes,
                                               prepare_user_mask, resolve_overlaps, resolve_speaker_count,
                                               strip_mask)


def test_parse_boxes_lines_auto_and_fractions():
    boxes = parse_boxes("10, 20, 30, 40\nauto\n\n0.5 0.1 0.25 0.8\n\n")
    assert boxes == [Box(10, 20, 30, 40), None, None, Box(0.5, 0.1, 0.25, 0.8)]
    assert parse_boxes("") == [] and parse_boxes("\n\n") == []


def test_parse_boxes_bad_line_names_it():
    with pytest.raises(SpeakerInputError, match="line 2 reads '1, 2, 3'"):
        parse_boxes("1,2,3,4\n1, 2, 3")


def test_box_pixels_and_fractions_are_x_y_width_height():
    mask, note = box_to_mask(Box(10, 20, 30, 40), 100, 200, 1)
    assert note is None and mask.shape == (100, 200)
    rows, cols = torch.nonzero(mask, as_tuple=True)
    assert (int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max())) == (20, 59, 10, 39)
    frac, _ = box_to_mask(Box(0.05, 0.2, 0.15, 0.4), 100, 200, 1)
    assert torch.equal(frac, mask)


def test_box_outside_the_image_is_an_error_and_overhang_is_clipped():
    with pytest.raises(SpeakerInputError, match=r"\(250, 10, 20, 20\) lies outside the 200x100"):
        box_to_mask(Box(250, 10, 20, 20), 100, 200, 2)
    with pytest.raises(SpeakerInputError, match="width or height <= 0"):
        box_to_mask(Box(10, 10, 0, 20), 100, 200, 2)
    mask, note = box_to_mask(Box(180, 50, 40, 80), 100, 200, 2)
    assert "clipped" in note and "Speaker 2" in note
    assert float(mask.sum()) == 20 * 50


def test_strips_two_speakers_are_the_official_halves():
    h, w = 790, 1280
    left, right = strip_mask(0, 2, h, w), strip_mask(1, 2, h, w)
    rows, cols = torch.nonzero(left, as_tuple=True)
    assert (int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1) == (39, 750, 32, 608)
    cols = torch.nonzero(right, as_tuple=True)[1]
    assert (int(cols.min()), int(cols.max()) + 1) == (672, 1248)
    three = torch.stack([strip_mask(i, 3, h, w) for i in range(3)])
    assert float(three.sum(0).max()) == 1.0  # strips never overlap


def _two_overlapping() -> torch.Tensor:
    masks = torch.zeros(2, 20, 40)
    masks[0, :, 0:24] = 1   # larger region, centre column 11.5
    masks[1, 5:15, 16:36] = 1  # smaller region, centre column 25.5
    return masks


def test_overlap_nearest_center():
    masks = _two_overlapping()
    out = resolve_overlaps(masks, "nearest_center")
    assert float(out.sum(0).max()) == 1.0
    assert torch.equal(out.sum(0), (masks.sum(0) > 0).float())  # union unchanged
    # contested columns 16..23, rows 5..14: the midpoint of the centres (row 9.5/col 11.5 and
    # row 9.5/col 25.5) is column 18.5, so 16..18 stay with speaker 1 and 19..23 go to speaker 2
    assert float(out[0, 10, 16:19].min()) == 1 and float(out[0, 10, 19:24].max()) == 0
    assert float(out[1, 10, 19:24].min()) == 1 and float(out[1, 10, 16:19].max()) == 0
    assert float(out[0, 2, 16:24].min()) == 1  # uncontested rows keep speaker 1


def test_overlap_smaller_region_and_keep():
    masks = _two_overlapping()
    smaller = resolve_overlaps(masks, "smaller_region")
    assert float(smaller[1, 5:15, 16:24].min()) == 1 and float(smaller[0, 5:15, 16:24].max()) == 0
    assert torch.equal(resolve_overlaps(masks, "keep"), masks)
    with pytest.raises(SpeakerInputError, match="'biggest'"):
        resolve_overlaps(masks, "biggest")


def test_overlap_tie_goes_to_the_earlier_track():
    masks = torch.ones(2, 4, 4)
    out = resolve_overlaps(masks, "smaller_region")
    assert torch.equal(out[0], torch.ones(4, 4)) and float(out[1].sum()) == 0


def test_layout_applies_the_overlap_rule():
    image = torch.rand(1, 640, 640, 3)
    boxes = [Box(0, 0, 400, 640), Box(240, 0, 400, 640)]
    layout = build_speaker_layout(image, 2, "480p", boxes=boxes)
    assert float(layout.masks.sum(0).max()) == 1.0
    assert float(layout.masks[0, 300, 319]) == 1 and float(layout.masks[1, 300, 320]) == 1
    kept = build_speaker_layout(image, 2, "480p", boxes=boxes, overlap="keep")
    assert float(kept.masks.sum(0).max()) == 2.0


def test_speaker_count_rules_name_both_numbers():
    assert resolve_speaker_count(0, 3) == 3
    assert resolve_speaker_count(2, None) == 2
    assert resolve_speaker_count(0, None, last_mask=3) == 3
    assert resolve_speaker_count(0, None) == 2
    with pytest.raises(SpeakerInputError, match="num_speakers is 2 but the audio input has 3 tracks"):
        resolve_speaker_count(2, 3)
    with pytest.raises(SpeakerInputError, match="3 box lines were given for 2 audio tracks"):
        resolve_speaker_count(0, 2, box_lines=3)
    with pytest.raises(SpeakerInputError, match="mask_3 is connected but there are 2 audio tracks"):
        resolve_speaker_count(0, 2, last_mask=3)
    with pytest.raises(SpeakerInputError, match="9 speakers"):
        resolve_speaker_count(9, None)


def test_user_mask_checks():
    with pytest.raises(SpeakerInputError, match="mask_2 is empty"):
        prepare_user_mask(torch.zeros(1, 50, 60), 50, 60, 2)
    with pytest.raises(SpeakerInputError, match="no pixel >= 0.5"):
        prepare_user_mask(torch.full((1, 50, 60), 0.2), 50, 60, 1)
    small = torch.zeros(1, 25, 30)
    small[0, 5:10, 0:15] = 0.9
    mask, notes = prepare_user_mask(small, 50, 60, 1)
    assert mask.shape == (50, 60) and "30x25" in notes[0] and "60x50" in notes[0]
    assert float(mask.sum()) == 10 * 30  # nearest x2 resize


def test_mask_beats_box_and_other_sized_mask_is_noted():
    image = torch.rand(1, 640, 640, 3)
    mask = torch.zeros(1, 320, 320)
    mask[0, :, 160:] = 1  # right half, at half the image size
    boxes = [Box(0, 0, 100, 100), Box(0, 0, 320, 640)]
    layout = build_speaker_layout(image, 2, "480p", masks=[mask], boxes=boxes)
    assert layout.sources == ["mask", "box"]
    assert float(layout.masks[0, :, 320:].min()) == 1 and float(layout.masks[0, :, :320].max()) == 0
    assert any("320x320" in note for note in layout.notes)
    assert any("mask was used" in note for note in layout.notes)


def test_region_lost_to_the_crop_is_reported():
    # 1400x640 -> resized to 980x448, cropped to 896x448: the 60 leftmost source pixels go
    image = torch.rand(1, 640, 1400, 3)
    with pytest.raises(SpeakerInputError, match="Speaker 1's region \\(box\\)"):
        build_speaker_layout(image, 2, "480p", boxes=[Box(0, 0, 50, 640), Box(640, 0, 200, 640)])
