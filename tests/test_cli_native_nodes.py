"""Stand-ins for ComfyUI's core nodes: same conventions as ComfyUI's, files where expected."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile
import torch
from PIL import Image

from comfyui_multitalk.cli.native_nodes import (CreateVideo, LoadAudio, LoadImage, LoadImageMask, PreviewImage,
                                                RunContext, SaveImage, SaveVideo)
from comfyui_multitalk.cli.run import run_workflow
from comfyui_multitalk.models.errors import MultiTalkError
from comfyui_multitalk.models.video_io import read_video_frames


@pytest.fixture
def painted(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    alpha = np.full((24, 32), 255, np.uint8)
    alpha[4:12, 8:20] = 0  # painted in the mask editor = transparent
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(tmp_path / "painted.png")
    Image.fromarray(rgb).save(tmp_path / "plain.png")
    return rgb, alpha


def test_load_image_returns_pixels_and_painted_mask(tmp_path, painted):
    rgb, alpha = painted
    image, mask = LoadImage(RunContext(input_dir=str(tmp_path))).load_image("painted.png [input]")
    assert image.shape == (1, 24, 32, 3) and torch.allclose(image[0], torch.from_numpy(rgb / 255.0).float())
    assert mask.shape == (1, 24, 32) and mask[0, 5, 10] == 1 and mask[0, 0, 0] == 0
    assert mask.sum() == 8 * 12
    _, plain_mask = LoadImage(RunContext()).load_image(str(tmp_path / "plain.png"))  # by full path
    assert plain_mask.shape == (1, 64, 64) and plain_mask.abs().sum() == 0  # ComfyUI's "no mask"
    with pytest.raises(MultiTalkError, match=r"'nobody.png'.*input folder"):
        LoadImage(RunContext(input_dir=str(tmp_path))).load_image("nobody.png")


def test_load_image_mask_channels(tmp_path, painted):
    rgb, alpha = painted
    context = RunContext(input_dir=str(tmp_path))
    (red,) = LoadImageMask(context).load_image("painted.png", "red")
    (inverted,) = LoadImageMask(context).load_image("painted.png", "alpha")
    assert torch.allclose(red[0], torch.from_numpy(rgb[..., 0] / 255.0).float())
    assert torch.equal(inverted[0], 1 - torch.from_numpy(alpha / 255.0).float())


def test_load_audio_keeps_channels_and_rate(tmp_path):
    stereo = np.random.default_rng(1).uniform(-0.5, 0.5, (2205, 2)).astype(np.float32)
    soundfile.write(tmp_path / "two.wav", stereo, 22050, subtype="FLOAT")
    (audio,) = LoadAudio(RunContext(input_dir=str(tmp_path))).load("two.wav")
    assert audio["sample_rate"] == 22050 and audio["waveform"].shape == (1, 2, 2205)
    assert torch.allclose(audio["waveform"][0], torch.from_numpy(stereo.T))


def _clip():
    frames = torch.rand(5, 32, 48, 3, generator=torch.Generator().manual_seed(0))
    audio = {"waveform": 0.1 * torch.randn(1, 1, 3200), "sample_rate": 16000}
    return CreateVideo(RunContext()).create(frames, 25.0, audio)[0]


def test_save_video_to_output_or_numbered_files(tmp_path):
    video = _clip()
    context = RunContext(output_dir=str(tmp_path / "out"))
    first = SaveVideo(context).save(video, "MultiTalk/talk", "mp4", "h264")["ui"]["files"][0]
    second = SaveVideo(context).save(video, "MultiTalk/talk", "auto", "auto")["ui"]["files"][0]
    assert first.endswith("out/MultiTalk/talk_00001_.mp4") and second.endswith("talk_00002_.mp4")
    frames, fps, seconds = read_video_frames(first)
    assert (frames, fps) == (5, 25.0) and seconds is not None and seconds >= 0.2
    chosen = RunContext(output_video=str(tmp_path / "mine.mp4"))
    SaveVideo(chosen).save(video, "ignored", "mp4", "h264")
    assert chosen.saved == [str(tmp_path / "mine.mp4")]
    with pytest.raises(MultiTalkError, match="saves several"):
        SaveVideo(chosen).save(video, "ignored", "mp4", "h264")


def test_pictures_go_beside_the_video(tmp_path):
    context = RunContext(output_video=str(tmp_path / "talk.mp4"))
    images = torch.rand(1, 8, 8, 3)
    SaveImage(context).save_images(images, "MultiTalk/two_speakers/timeline")
    PreviewImage(context).save_images(torch.rand(2, 8, 8, 3))
    assert [p.split("/")[-1] for p in context.saved] == ["talk_timeline.png", "talk_preview_01.png",
                                                        "talk_preview_02.png"]
    saved = np.asarray(Image.open(context.saved[0]))
    assert np.abs(saved / 255.0 - images[0].numpy()).max() <= 0.5 / 255 + 1e-6


def test_run_workflow_with_core_nodes_only(tmp_path, painted):
    prompt = {"1": {"class_type": "LoadImage", "inputs": {"image": "missing.png"}, "_meta": {"title": "Picture"}},
              "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x/mask_check"}}}
    context = RunContext(input_dir=str(tmp_path), output_dir=str(tmp_path / "out"))
    lines = []
    saved = run_workflow(prompt, ["Picture.image=painted.png"], context, log=lines.append)
    assert saved == [str(tmp_path / "out" / "x" / "mask_check_00001_.png")]
    assert lines[0] == "[1/2] node 1 'Picture' (LoadImage)" and lines[-1].startswith("Finished in")
