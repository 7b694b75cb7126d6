"""Dataset preparation: synthetic clips -> the window cache, with every skip reason named."""
from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from comfyui_multitalk.models.audio import build_speaker_audio, prepare_track, read_audio_file, stack_speaker_windows
from comfyui_multitalk.models.errors import DatasetInputError
from comfyui_multitalk.models.sampling.conditioning import encode_frames, window_condition
from comfyui_multitalk.models.training import PrepareSettings, find_clips, load_cache, prepare_clip, prepare_dataset
from comfyui_multitalk.models.training.batches import audio_windows
from comfyui_multitalk.models.training.clip_folder import describe_clip
from comfyui_multitalk.models.training.tiny import tiny_training_encoders, write_synthetic_clip
from comfyui_multitalk.models.training.video_clips import bucket_frame, frames_at_fps
from comfyui_multitalk.nodes.training_nodes import MultiTalkPrepareDataset

SETTINGS = PrepareSettings(window=9, resolution="120p", require_faces=False)  # drawn faces: no detector hit


@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    return tiny_training_encoders(str(tmp_path_factory.mktemp("encoders")), real_vae=False)


def _half_mask(path, height, width, left):
    pixels = np.zeros((height, width), dtype=np.uint8)
    if left:
        pixels[:, : width // 2] = 255
    else:
        pixels[:, width // 2:] = 255
    Image.fromarray(pixels).save(path)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    folder = str(root)
    write_synthetic_clip(folder, "alpha", 0.8, caption="a woman talks")
    write_synthetic_clip(folder, "bravo", 0.44, own_audio=True, caption=None, seed=2)
    write_synthetic_clip(folder, "charlie", 0.2)
    write_synthetic_clip(folder, "delta", 0.44, size=(128, 224), speakers=2, seed=4)
    _half_mask(root / "delta.mask1.png", 128, 224, left=True)
    _half_mask(root / "delta.mask2.png", 128, 224, left=False)
    write_synthetic_clip(folder, "echo", 0.44, speakers=2)
    os.remove(root / "echo.speaker1.wav")
    (root / "foxtrot.mp4").write_bytes(b"not a video at all")
    return root


@pytest.fixture(scope="module")
def prepared(clips, encoders, tmp_path_factory):
    cache = str(tmp_path_factory.mktemp("cache"))
    node = MultiTalkPrepareDataset()
    assert all("tooltip" in spec[1] for spec in node.INPUT_TYPES()["required"].values())
    folder, summary, count = node.prepare(encoders.vae, encoders.wav2vec, encoders.text, encoders.clip_vision,
                                          str(clips), cache, 9, "120p", 0, 0, require_faces=False)
    return folder, summary, count


def load_cache_windows(folder, names):
    from comfyui_multitalk.models.training.cache import read_window_info

    return [read_window_info(os.path.join(folder, name)) for name in names]


def _bucketed(path, target, start, count):
    frames = [bucket_frame(f, target) for f in frames_at_fps(path)][start:start + count]
    return torch.from_numpy(np.stack(frames)).float() / 255.0


def test_folder_is_encoded_with_skips_and_notes(prepared):
    folder, summary, count = prepared
    assert count == 4
    assert sorted(load_cache(folder).windows, key=lambda w: w.path)[0].source == "alpha.mp4"
    assert "skipped charlie.mp4: Clip 'charlie.mp4' has 5 video frames" in summary
    assert "window of 9 frames" in summary
    assert "skipped echo.mp4: Clip 'echo.mp4': no audio for speaker 1" in summary
    assert "skipped foxtrot.mp4: Cannot open the video" in summary
    assert "bravo: no caption file 'bravo.txt'; trained with an empty caption" in summary


def _stored(tensor):
    """What the cache keeps of an fp32 tensor: its bf16 rounding."""
    return tensor.to(torch.bfloat16)


def test_window_tensors_match_the_sampler_encoding(prepared, clips, encoders):
    folder = prepared[0]
    voice = prepare_track(*read_audio_file(str(clips / "alpha.speaker1.wav")), 1)
    features = build_speaker_audio(encoders.wav2vec, [voice]).features
    for index, start in ((0, 0), (1, 9)):
        window = load_file(os.path.join(folder, f"alpha_w000{index}.safetensors"))
        assert {t.dtype for k, t in window.items() if k != "speech"} == {torch.bfloat16}  # stored in 16 bits
        samples = (voice[start * 640:(start + 9) * 640] * 32767).round().astype(np.int16)  # the sound, for previews
        assert torch.equal(window["speech"][0], torch.from_numpy(samples))
        frames = _bucketed(str(clips / "alpha.mp4"), (160, 160), start, 9)
        assert torch.equal(window["latents"], _stored(encode_frames(encoders.vae, frames)[0]))
        assert torch.equal(window["y"], _stored(window_condition(encoders.vae, frames[:1], 9)[0][0]))
        assert window["y"][:4, 0].eq(1).all() and window["y"][:4, 1:].eq(0).all()
        assert torch.equal(audio_windows(window["audio"]), _stored(stack_speaker_windows(features, start, 9)))
        assert torch.equal(window["text"], _stored(encoders.text.encode("a woman talks")[0]))
        clip = encoders.clip_vision.encode_image(frames[:1]).penultimate_hidden_states[0]
        assert torch.equal(window["clip"], _stored(clip))
        assert window["masks"].shape == (2, 20, 20) and window["masks"].eq(1).all()


def test_two_speaker_masks_come_from_the_mask_files(prepared):
    info = [w for w in load_cache(prepared[0]).windows if w.source == "delta.mp4"]
    assert len(info) == 1 and info[0].speakers == 2 and info[0].latent_shape == (3, 14, 28)
    masks = load_file(info[0].path)["masks"]  # [3, 14, 28]
    assert masks[0, :, :13].eq(1).all() and masks[0, :, 15:].eq(0).all()
    assert masks[1, :, 15:].eq(1).all() and masks[1, :, :13].eq(0).all()
    assert masks.sum(0).eq(1).all()


def test_bad_clips_raise_typed_errors_naming_the_value(clips, encoders, tmp_path):
    files = sorted(os.listdir(clips))
    with pytest.raises(DatasetInputError, match=r"mask for speaker 3 but there is no audio"):
        describe_clip(str(clips), "alpha.mp4", files + ["alpha.mask3.png"])
    write_synthetic_clip(str(tmp_path), "mute", 0.8, own_audio=False)
    os.remove(tmp_path / "mute.speaker1.wav")
    (clip,), _ = find_clips(str(tmp_path))
    report = prepare_clip(clip, str(tmp_path / "i2v"), encoders, SETTINGS)  # no sound: image-to-video data
    assert len(report.windows) == 2 and any("image-to-video" in n for n in report.notes)
    (info, *_) = load_cache_windows(tmp_path / "i2v", report.windows)
    assert info.task == "i2v" and load_file(info.path)["audio"].eq(0).all()
    with pytest.raises(DatasetInputError, match=r"4n\+1"):
        prepare_clip(clip, str(tmp_path), encoders, PrepareSettings(window=8))
    write_synthetic_clip(str(tmp_path / "short"), "brief", 0.2) if os.makedirs(tmp_path / "short") is None else None
    with pytest.raises(DatasetInputError, match=r"(?s)No training window could be made .*skipped brief.mp4"):
        prepare_dataset(str(tmp_path / "short"), str(tmp_path / "cache"), encoders, SETTINGS)
    with pytest.raises(DatasetInputError, match=r"clips folder '.*nowhere' does not exist"):
        find_clips(str(tmp_path / "nowhere"))


def test_real_tiny_vae_and_overlapping_windows(clips, encoders, tmp_path):
    from safetensors.torch import save_file

    from comfyui_multitalk.models.encoders import load_vae
    from comfyui_multitalk.models.encoders.tiny import tiny_vae_state

    (alpha,) = [c for c in find_clips(str(clips))[0] if c.name == "alpha"]
    overlapping = prepare_clip(alpha, str(tmp_path), encoders,
                               PrepareSettings(window=5, stride=3, resolution="120p", require_faces=False))
    assert overlapping.windows == [f"alpha_w{i:04d}.safetensors" for i in range(6)]  # starts 0, 3, ..., 15
    third = load_file(str(tmp_path / overlapping.windows[2]))
    frames = _bucketed(str(clips / "alpha.mp4"), (160, 160), 6, 5)
    assert torch.equal(third["latents"], _stored(encode_frames(encoders.vae, frames)[0]))

    save_file(tiny_vae_state(seed=3), str(tmp_path / "vae.safetensors"))
    real = dataclasses.replace(encoders, vae=load_vae(str(tmp_path / "vae.safetensors")))
    report = prepare_clip(alpha, str(tmp_path / "real"), real,
                          PrepareSettings(window=5, resolution="120p", max_windows_per_clip=1,
                                          require_faces=False))
    assert report.windows == ["alpha_w0000.safetensors"]
    window = load_file(str(tmp_path / "real" / report.windows[0]))
    assert window["latents"].shape == (16, 2, 20, 20) and window["y"].shape == (20, 2, 20, 20)
    # The causal VAE's first latent frame sees only the first frame, which both encodings share.
    torch.testing.assert_close(window["y"][4:, 0], window["latents"][:, 0])
    assert not torch.allclose(window["y"][4:, 1], window["latents"][:, 1], atol=1e-3)


def _write_flash_clip(path, audio_codec: str, audio_delay: float) -> None:
    """A 25 fps clip (30 frames) whose frame 12 is white and whose sound clicks at that frame's time
    (0.48 s after the first frame); the sound starts `audio_delay` s after the first frame
    (negative: before it), as phone and camera files often do."""
    from fractions import Fraction

    import av

    video_start, audio_start = max(0.0, -audio_delay), max(0.0, audio_delay)
    rate = 16000
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 32, 32, "yuv420p"
        audio = container.add_stream(audio_codec, rate=rate, layout="mono")
        for index in range(30):
            image = np.full((32, 32, 3), 255 if index == 12 else 0, np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = round(video_start * 25) + index, Fraction(1, 25)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        sound = np.zeros((1, rate * 2), np.float32)
        click = round((0.48 - audio_delay) * rate)
        sound[0, click:click + 3] = 0.8
        for pos in range(0, sound.shape[1], 1024):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(sound[:, pos:pos + 1024]), format="fltp",
                                               layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = rate, round(audio_start * rate) + pos, Fraction(1, rate)
            container.mux(audio.encode(frame))
        container.mux(audio.encode(None))


@pytest.mark.parametrize("name, codec, delay", [("late_sound.mp4", "aac", 0.136), ("late_sound.mkv", "aac", 0.136),
                                                ("late_pictures.mov", "pcm_s16le", -0.2)])
def test_clip_frames_and_own_sound_share_one_clock(tmp_path, name, codec, delay):
    """The training reader's frame 12 (the white one) and the clip's own sound (read as the
    dataset does, then prepared to 16 kHz) meet at 0.48 s: the click is 12 frames in, within 1 ms."""
    path = tmp_path / name
    _write_flash_clip(path, codec, delay)
    brightness = [frame.mean() for frame in frames_at_fps(str(path))]
    assert len(brightness) == 30 and int(np.argmax(brightness)) == 12
    voice = prepare_track(*read_audio_file(str(path)), 1)  # mono 16 kHz, loudness-normalised
    onset = np.flatnonzero(np.abs(voice) > 0.5 * np.abs(voice).max())[0] / 16000
    assert abs(onset - 12 / 25) < 1e-3


def test_the_cache_never_replaces_a_clip_file(tmp_path):
    """A cache folder that is the clips folder, with a manifest listing a clip: refused before any
    encoding (encoders are never touched), the clip intact."""
    import json

    from comfyui_multitalk.models.errors import OutputPathError
    from comfyui_multitalk.models.output_files import run_scope

    video = write_synthetic_clip(str(tmp_path), "talk", seconds=0.4, size=(32, 32))
    given = {name: (tmp_path / name).read_bytes() for name in os.listdir(tmp_path)}
    (tmp_path / "manifest.json").write_text(json.dumps({"windows": ["talk.mp4"]}))
    with run_scope(), pytest.raises(OutputPathError, match=f"The output '{video}' is the file '{video}'"):
        prepare_dataset(str(tmp_path), str(tmp_path), encoders=None, settings=SETTINGS)
    assert all((tmp_path / name).read_bytes() == data for name, data in given.items())
