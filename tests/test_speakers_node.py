"""The MultiTalkSpeakers node and the preview picture."""
from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest
import torch

from comfyui_multitalk.models.errors import SpeakerInputError
from comfyui_multitalk.models.speakers import (Box, SpeakerLayout, build_speaker_layout, render_preview,
                                               speaker_color)
from comfyui_multitalk.models.speakers.preview import TINT_ALPHA
from comfyui_multitalk.nodes.speaker_nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

Node = NODE_CLASS_MAPPINGS["MultiTalkSpeakers"]
GREY = 0.4


def _audio(tracks: int):
    return SimpleNamespace(features=[torch.zeros(4, 12, 768) for _ in range(tracks)])


def test_node_declaration_is_complete():
    assert set(NODE_DISPLAY_NAME_MAPPINGS) == {"MultiTalkSpeakers"}
    spec = Node.INPUT_TYPES()
    for group in ("required", "optional"):
        for name, (_, options) in spec[group].items():
            assert options.get("tooltip"), name
    assert len(Node.RETURN_TYPES) == len(Node.RETURN_NAMES) == len(Node.OUTPUT_TOOLTIPS)
    assert Node.RETURN_TYPES[0] == "MULTITALK_SPEAKERS" and Node.CATEGORY.startswith("MultiTalk/")


def test_node_outputs_agree_on_geometry():
    out = Node().place(torch.rand(1, 300, 500, 3), 0, "720p", "0, 0, 250, 300\n250, 0, 250, 300",
                       audio=_audio(2))
    layout, preview, image, width, height, report = out["result"]
    assert isinstance(layout, SpeakerLayout) and out["ui"]["multitalk_speaker_preview"] == []  # no ComfyUI here
    assert (height, width) == (layout.height, layout.width) == (768, 1216)
    assert image.shape == preview.shape == (1, 768, 1216, 3)
    assert layout.latent_masks().shape == (3, 96, 152) and layout.token_masks().shape == (3, 48, 76)
    assert layout.sources == ["box", "box"] and "speaker 2: box" in report


def test_node_reports_count_mismatches():
    with pytest.raises(SpeakerInputError, match="num_speakers is 3 but the audio input has 2 tracks"):
        Node().place(torch.rand(1, 64, 64, 3), 3, audio=_audio(2))
    with pytest.raises(SpeakerInputError, match="3 box lines were given for 2 audio tracks"):
        Node().place(torch.rand(1, 64, 64, 3), 0, boxes="auto\nauto\n0,0,10,10", audio=_audio(2))
    with pytest.raises(SpeakerInputError, match="mask_3 is connected but there are 2 audio tracks"):
        Node().place(torch.rand(1, 64, 64, 3), 0, audio=_audio(2), mask_3=torch.ones(1, 64, 64))


def test_node_reports_bad_masks_and_boxes():
    with pytest.raises(SpeakerInputError, match="mask_1 is empty"):
        Node().place(torch.rand(1, 64, 64, 3), 2, mask_1=torch.zeros(1, 64, 64))
    with pytest.raises(SpeakerInputError, match="lies outside the 64x64 reference image"):
        Node().place(torch.rand(1, 64, 64, 3), 2, boxes="100, 100, 10, 10\nauto")


def test_node_shows_the_preview_inside_comfyui(monkeypatch, tmp_path):
    fake = SimpleNamespace(get_temp_directory=lambda: str(tmp_path))
    monkeypatch.setitem(sys.modules, "folder_paths", fake)
    out = Node().place(torch.rand(1, 64, 64, 3), 2, boxes="0,0,32,64\n32,0,32,64")
    (saved,) = out["ui"]["multitalk_speaker_preview"]
    assert saved["type"] == "temp" and (tmp_path / saved["filename"]).is_file()


def test_preview_colours_where_the_masks_are():
    image = torch.full((1, 640, 640, 3), GREY)
    layout = build_speaker_layout(image, 2, "480p", boxes=[Box(0, 160, 256, 480), Box(384, 160, 256, 480)])
    preview = render_preview(layout.image, layout.masks)
    assert preview.shape == (1, 640, 640, 3) and preview.dtype == torch.float32
    assert 0.0 <= float(preview.min()) and float(preview.max()) <= 1.0
    for track, (row, col) in ((1, (500, 128)), (2, (500, 512))):  # well inside, far from labels
        expected = torch.tensor([GREY * (1 - TINT_ALPHA) + c * TINT_ALPHA for c in speaker_color(track)])
        assert torch.allclose(preview[0, row, col], expected, atol=1 / 255)
    assert torch.allclose(preview[0, 60:140, 280:360], torch.full((80, 80, 3), GREY), atol=1 / 255)
    assert not torch.allclose(preview[0, 165:220, 5:60], image[0, 165:220, 5:60], atol=0.05)  # label "1"
