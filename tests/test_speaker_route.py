"""The speaker editor's server route: the layout the Speakers node would build from the pictures
named in the browser (Load Image semantics: mask = 1 - alpha), as plain data, or the node's own
error message; and the audio node's timeline payload inside ComfyUI."""
from __future__ import annotations

import sys
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile
import torch
from PIL import Image

from comfyui_multitalk.models.audio.timeline_image import draw_timeline
from comfyui_multitalk.nodes.audio_ui import timeline_ui
from comfyui_multitalk.nodes.speaker_routes import UNREADABLE_MASK, load_picture, speakers_layout

W, H = 320, 200


@pytest.fixture
def pictures(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (H, W, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "ref.png")
    alpha = np.full((H, W, 1), 255, np.uint8)
    alpha[20:180, 180:300] = 0  # painted in the mask editor: transparent = the speaker
    Image.fromarray(np.concatenate([rgb, alpha], axis=2), "RGBA").save(tmp_path / "painted.png")
    return lambda name: str(tmp_path / name)


def test_load_picture_gives_what_load_image_gives(pictures):
    image, mask = load_picture(pictures("painted.png"))
    assert image.shape == (1, H, W, 3) and mask.shape == (1, H, W)
    assert mask[0, 100, 200] == 1 and mask[0, 5, 5] == 0
    assert load_picture(pictures("ref.png"))[1].shape == (1, 64, 64)  # no alpha: Load Image's empty mask


def test_layout_of_a_box_an_automatic_speaker_and_a_painted_one(pictures):
    boxed = speakers_layout({"image": "ref.png", "boxes": "10, 20, 100, 150", "num_speakers": 2,
                             "resolution": "240p"}, resolve=pictures)
    assert boxed["ok"] and (boxed["width"], boxed["height"]) == (384, 256)
    assert (boxed["source_width"], boxed["source_height"], boxed["left"], boxed["top"]) == (W, H, 13, 0)
    first, second = boxed["speakers"]
    assert first["source"] == "box" and first["box"] == [10, 20, 100, 150]
    assert second["source"] in ("auto", "strip") and len(second["grid"]) == 16 and len(second["grid"][0]) == 24
    painted = speakers_layout({"image": "ref.png", "masks": [None, "painted.png"], "tracks": 2,
                               "resolution": "240p"}, resolve=pictures)
    assert painted["speakers"][1]["source"] == "mask"
    assert painted["speakers"][1]["box"] == [180, 20, 120, 160]  # the transparent pixels


def test_errors_and_notes_are_the_nodes(pictures):
    empty = speakers_layout({"image": "ref.png", "masks": ["ref.png"], "num_speakers": 2}, resolve=pictures)
    assert empty == {"ok": False, "error": empty["error"]} and "mask_1 is empty" in empty["error"]
    mismatch = speakers_layout({"image": "ref.png", "num_speakers": 3, "tracks": 2}, resolve=pictures)
    assert "num_speakers is 3 but the audio input has 2 tracks" in mismatch["error"]
    assert "Connect a Load Image" in speakers_layout({"image": None}, resolve=pictures)["error"]
    missing = speakers_layout({"image": "gone.png"}, resolve=pictures)
    assert missing["ok"] is False and "gone.png" in missing["error"]
    unreadable = speakers_layout({"image": "ref.png", "masks": [None, None, UNREADABLE_MASK], "resolution": "240p"},
                                 resolve=pictures)
    assert len(unreadable["speakers"]) == 3  # a connected mask_3 counts, as it does in the node
    assert "mask_3 comes from a node the editor cannot read" in unreadable["notes"][0]


def test_pictures_are_looked_up_only_in_comfyuis_folders(tmp_path, monkeypatch):
    from comfyui_multitalk.models.errors import SpeakerInputError
    from comfyui_multitalk.nodes.comfy_bridge import input_image_path

    folders = {kind: tmp_path / kind for kind in ("input", "temp", "output")}
    for folder in folders.values():
        folder.mkdir()
    (folders["input"] / "a.png").write_bytes(b"x")
    (tmp_path / "secret.png").write_bytes(b"x")
    fake = SimpleNamespace(get_annotated_filepath=lambda name: str(folders["input"] / name),
                           get_directory_by_type=lambda kind: str(folders[kind]))
    monkeypatch.setitem(sys.modules, "folder_paths", fake)
    assert input_image_path("a.png") == str(folders["input"] / "a.png")
    for name in ("../secret.png", "b.png"):
        with pytest.raises(SpeakerInputError, match="No picture"):
            input_image_path(name)


def test_timeline_payload_inside_comfyui(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "folder_paths", SimpleNamespace(get_temp_directory=lambda: str(tmp_path)))
    activity = torch.zeros(2, 50, dtype=torch.bool)
    mixed = {"waveform": 0.5 * torch.sin(torch.arange(32000) / 10.0)[None, None], "sample_rate": 16000}
    ui = timeline_ui(draw_timeline(activity, 25.0), mixed, 50, 25.0)
    (picture,), (sound,), (geometry,) = ui["multitalk_timeline"], ui["multitalk_soundtrack"], \
        ui["multitalk_timeline_geometry"]
    assert picture["type"] == sound["type"] == "temp" and (tmp_path / picture["filename"]).is_file()
    samples, rate = soundfile.read(tmp_path / sound["filename"])
    assert rate == 16000 and samples.shape == (32000,) and abs(samples.max() - 0.5) < 1e-3
    assert geometry == {"duration": 2.0, "plot_left": 56, "plot_width": 960, "image_width": 1024}
