"""Real clips, prepared as a researcher's own would be: windows stay inside shots and take their
speaker masks from their own first frame, two speakers can come as one mix + RTTM, silent
videos are image-to-video data, continuation conditions are stored, and windows with no usable
face or with sound off the mouths are left out with the reason."""
from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile
import torch
from PIL import Image
from safetensors.torch import load_file

from comfyui_multitalk.models.audio import build_speaker_audio, prepare_track
from comfyui_multitalk.models.audio.prepare import to_mono_16k
from comfyui_multitalk.models.errors import DatasetInputError
from comfyui_multitalk.models.sampling.conditioning import window_condition
from comfyui_multitalk.models.speakers.detect import detect_faces
from comfyui_multitalk.models.training import PrepareSettings, find_clips, prepare_clip, prepare_dataset
from comfyui_multitalk.models.training.batches import audio_windows
from comfyui_multitalk.models.training.cache import read_window_info
from comfyui_multitalk.models.training.rttm import read_rttm, speaker_tracks
from comfyui_multitalk.models.training.tiny import synthetic_voice, tiny_training_encoders
from comfyui_multitalk.models.video_io import write_mp4

DRAWN = PrepareSettings(window=9, resolution="120p", require_faces=False)


@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    return tiny_training_encoders(str(tmp_path_factory.mktemp("encoders")), real_vae=False)


def _scene(frames: int, colour: tuple[int, int, int], left: bool, size=(128, 224)) -> np.ndarray:
    """Flat background with a bright block where the person is (left or right half)."""
    height, width = size
    video = np.empty((frames, height, width, 3), np.uint8)
    video[:] = colour
    x0 = width // 8 if left else width // 2 + width // 8
    video[:, height // 4: 3 * height // 4, x0: x0 + width // 4] = (230, 200, 170)
    return video


def _write(folder, name, frames: np.ndarray, voices=(), own_voice=None, caption="two people talk"):
    sound = None if own_voice is None else {"waveform": torch.from_numpy(own_voice)[None, None], "sample_rate": 16000}
    write_mp4(os.path.join(folder, f"{name}.mp4"), torch.from_numpy(frames).float() / 255, 25.0, sound)
    for k, voice in enumerate(voices, start=1):
        soundfile.write(os.path.join(folder, f"{name}.speaker{k}.wav"), voice, 16000)
    with open(os.path.join(folder, f"{name}.txt"), "w") as handle:
        handle.write(caption)


def _windows(folder, report):
    return [(read_window_info(os.path.join(folder, n)), load_file(os.path.join(folder, n))) for n in report.windows]


def test_windows_stay_inside_shots_and_take_masks_from_their_own_first_frame(tmp_path, encoders):
    clips = tmp_path / "clips"
    clips.mkdir()
    # Shot 1 (frames 0-23): speaker 1 on the left; a cut; shot 2 (24-49): the people swapped sides.
    frames = np.concatenate([_scene(24, (30, 60, 120), left=True), _scene(26, (140, 40, 30), left=False)])
    voices = [synthetic_voice(2.0, 150.0, 1), synthetic_voice(2.0, 230.0, 2)]
    _write(str(clips), "cut", frames, voices)
    masks = np.zeros((50, 128, 224, 3), np.uint8)  # speaker 1's per-frame mask follows the person
    masks[:24, :, :112], masks[24:, :, 112:] = 255, 255
    write_mp4(str(clips / "cut.mask1.mp4"), torch.from_numpy(masks).float() / 255, 25.0)
    write_mp4(str(clips / "cut.mask2.mp4"), 1 - torch.from_numpy(masks).float() / 255, 25.0)
    (clip,), skipped = find_clips(str(clips))
    assert skipped == [] and clip.num_speakers == 2  # mask videos are no clips of their own
    report = prepare_clip(clip, str(tmp_path / "cache"), encoders, DRAWN)
    windows = _windows(tmp_path / "cache", report)
    starts = [int(load_meta(info.path)["start_frame"]) for info, _ in windows]
    assert starts == [0, 9, 24, 33]  # 18..26 would straddle the cut at 24
    assert any("cuts at frames [24]" in note for note in report.notes)
    width = windows[0][1]["masks"].shape[-1]  # latent grid, speakers then background
    for (info, tensors), start in zip(windows, starts):
        masks = tensors["masks"].float()
        left, right = masks[0, :, : width // 2 - 1], masks[0, :, width // 2 + 1:]
        if start < 24:
            assert left.eq(1).all() and right.eq(0).all(), start
        else:
            assert left.eq(0).all() and right.eq(1).all(), start


def load_meta(path):
    from safetensors import safe_open

    with safe_open(path, framework="pt") as handle:
        return handle.metadata()


def test_continuation_conditions_are_stored_as_the_sampler_builds_them(tmp_path, encoders):
    clips = tmp_path / "clips"
    clips.mkdir()
    frames = np.concatenate([_scene(13, (30, 60, 120), left=True), _scene(13, (30, 60, 120), left=False)])
    frames[13:, :8] = 255  # the frames differ, so each condition is told apart
    _write(str(clips), "solo", frames, [synthetic_voice(1.1, 160.0, 3)])
    (clip,), _ = find_clips(str(clips))
    settings = PrepareSettings(window=9, stride=9, resolution="120p", require_faces=False, split_shots=False,
                               motion_multitalk=5, motion_infinitetalk=1)
    report = prepare_clip(clip, str(tmp_path / "cache"), encoders, settings)
    (first, w0), (second, w1) = _windows(tmp_path / "cache", report)
    assert first.motion_frames("multitalk") == 5 and first.motion_frames("infinitetalk") == 1
    pixels = torch.from_numpy(np.stack(_bucketed_frames(clips / "solo.mp4"))).float() / 255
    stored = lambda t: t.to(torch.bfloat16)  # noqa: E731 (the cache keeps 16 bits)
    y_motion = window_condition(encoders.vae, pixels[9:14], 9)[0][0]
    assert torch.equal(w1["y_motion"], stored(y_motion))
    assert w1["y_motion"][:4, :2].eq(1).all() and w1["y_motion"][:4, 2:].eq(0).all()  # 5 frames: 2 latents known
    clip_last_known = encoders.clip_vision.encode_image(pixels[13:14]).penultimate_hidden_states[0]
    assert torch.equal(w1["clip_motion"], stored(clip_last_known))
    # InfiniteTalk: every window is anchored on the reference (the shot's first frame).
    assert torch.equal(w1["y_ref"], stored(window_condition(encoders.vae, pixels[:1], 9)[0][0]))
    assert torch.equal(w0["y_ref"], w0["y"]) and not torch.equal(w1["y_ref"], w1["y"])


def _bucketed_frames(path):
    from comfyui_multitalk.models.training.video_clips import bucket_frame, frames_at_fps

    from comfyui_multitalk.models.speakers.geometry import choose_bucket

    return [bucket_frame(f, choose_bucket(128, 224, "120p")) for f in frames_at_fps(str(path))]


def test_a_mixed_track_and_an_rttm_file_give_each_speaker_its_turns(tmp_path, encoders):
    rttm = tmp_path / "talk.rttm"
    rttm.write_text(";; who speaks when\n"
                    "SPEAKER talk 1 0.00 0.50 <NA> <NA> bob <NA> <NA>\n"
                    "SPEAKER talk 1 0.50 0.60 <NA> <NA> alice <NA> <NA>\n"
                    "SPEAKER talk 1 1.10 0.30 <NA> <NA> bob <NA> <NA>\n")
    turns = read_rttm(str(rttm))
    assert list(turns) == ["alice", "bob"] and len(turns["bob"]) == 2
    assert np.allclose(turns["bob"], [(0.0, 0.5), (1.1, 1.4)]) and np.allclose(turns["alice"], [(0.5, 1.1)])
    mix = np.arange(1, 16001, dtype=np.float32) / 16000  # 1 s at 16 kHz, never zero
    alice, bob = speaker_tracks(mix, 16000, turns)
    assert np.array_equal(alice[8000:16000], mix[8000:16000]) and not alice[:8000].any()
    assert np.array_equal(bob[:8000], mix[:8000]) and not bob[8000:].any()
    bad = tmp_path / "bad.rttm"
    bad.write_text("SPEAKER talk 1 zero 0.5 <NA> <NA> bob <NA> <NA>\n")
    with pytest.raises(DatasetInputError, match=r"line 1 is not an RTTM SPEAKER line"):
        read_rttm(str(bad))

    clips = tmp_path / "clips"
    clips.mkdir()
    voice = synthetic_voice(1.5, 180.0, 5)
    frames = _scene(37, (30, 60, 120), left=True)
    _write(str(clips), "talk", frames, own_voice=voice)
    os.replace(rttm, clips / "talk.rttm")
    (clip,), _ = find_clips(str(clips))
    assert clip.num_speakers == 2
    report = prepare_clip(clip, str(tmp_path / "cache"), encoders, DRAWN)
    assert any("alice = speaker 1, bob = speaker 2" in note for note in report.notes)
    (info, window), *_ = _windows(tmp_path / "cache", report)
    assert info.speakers == 2
    from comfyui_multitalk.models.audio import read_audio_file

    sound = to_mono_16k(*read_audio_file(str(clips / "talk.mp4")), 1)  # the video's own sound, on its clock
    at = np.arange(sound.size)  # samples: alice 0.5-1.1 s, bob 0-0.5 s and 1.1-1.4 s
    cut = [np.where((at >= 8000) & (at < 17600), sound, 0),
           np.where((at < 8000) | ((at >= 17600) & (at < 22400)), sound, 0)]
    expected = build_speaker_audio(encoders.wav2vec, [prepare_track(t, 16000, k) for k, t in enumerate(cut, 1)])
    from comfyui_multitalk.models.audio import stack_speaker_windows

    assert torch.equal(audio_windows(window["audio"]),
                       stack_speaker_windows(expected.features, 0, 9).to(torch.bfloat16))


def _face_clip(folder, name, photo, voices, delay_frames=0):
    """The two-person photo with each mouth opening with its own voice; the speakers' wav files
    start `delay_frames` late against the pictures."""
    import cv2

    pixels = np.asarray(photo)
    faces = sorted(detect_faces(pixels)[:2], key=lambda f: f.center[0])
    count = int(voices[0].size / 640)
    frames = np.repeat(pixels[None], count, axis=0).copy()
    for i in range(count):
        for face, voice in zip(faces, voices):
            level = float(np.abs(voice[i * 640:(i + 1) * 640]).mean())
            centre = (int(face.center[0]), int(face.y + 0.8 * face.h))
            opening = max(1, int(level * 60 * face.h / 40))
            cv2.ellipse(frames[i], centre, (int(face.w * 0.22), opening), 0, 0, 360, (60, 20, 30), -1)
    late = [np.concatenate([np.zeros(delay_frames * 640, np.float32), v])[: v.size] for v in voices]
    _write(folder, name, frames, late)


def test_windows_without_a_face_or_with_sound_off_the_mouths_are_left_out(tmp_path, encoders, samples_dir):
    # The two heads, at the 240p bucket's size (256x384), where the face detector finds both.
    photo = Image.open(samples_dir / "two_speakers.jpg").convert("RGB").crop((280, 0, 1000, 480)).resize((384, 256))
    clips = tmp_path / "clips"
    clips.mkdir()
    voices = [synthetic_voice(3.4, 150.0, 11), synthetic_voice(3.4, 240.0, 12)]
    _face_clip(str(clips), "in_sync", photo, voices)
    _face_clip(str(clips), "late", photo, voices, delay_frames=8)
    _write(str(clips), "drawn", _scene(85, (30, 60, 120), left=True), voices)
    settings = PrepareSettings(window=41, resolution="240p")
    summary = prepare_dataset(str(clips), str(tmp_path / "cache"), encoders, settings)
    assert sorted({read_window_info(os.path.join(summary.cache_folder, n)).source for n in summary.windows}) == \
        ["in_sync.mp4"]
    reasons = dict(summary.skipped)
    assert "no usable face in frame 0" in reasons["drawn.mp4"]
    assert "unsynchronised audio: speaker 1's sound is about 8 frames (0.32 s) late" in reasons["late.mp4"]
    for name in ("in_sync", "late", "drawn"):  # without the checks every clip gives its two windows
        (clip,) = [c for c in find_clips(str(clips))[0] if c.name == name]
        relaxed = PrepareSettings(window=41, resolution="240p", max_av_offset=-1, require_faces=False,
                                  split_shots=False)
        assert len(prepare_clip(clip, str(tmp_path / "cache2"), encoders, relaxed).windows) == 2


def _late_sound_clip(path, voice: np.ndarray, delay: float) -> None:
    """30 frames at 25 fps and a lossless soundtrack that starts `delay` s after the first frame."""
    from fractions import Fraction

    import av

    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 64, 64, "yuv420p"
        audio = container.add_stream("pcm_s16le", rate=16000, layout="mono")
        for index in range(30):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 8 * index, np.uint8), format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, 25)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        start = round(delay * 16000)
        for pos in range(0, voice.size, 1024):
            chunk = np.ascontiguousarray(voice[None, pos:pos + 1024])
            frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = 16000, start + pos, Fraction(1, 16000)
            container.mux(audio.encode(frame))
        container.mux(audio.encode(None))


def test_a_clip_whose_sound_starts_late_trains_on_the_sound_at_its_true_time(tmp_path, encoders):
    """The soundtrack starts 0.136 s (3.4 frames) after the first picture: the window's wav2vec
    features are those of the voice placed 0.136 s into the clip, not of the voice from frame 0."""
    from comfyui_multitalk.models.audio import stack_speaker_windows

    clips = tmp_path / "clips"
    clips.mkdir()
    voice = (synthetic_voice(1.0, 170.0, 8) * 32767).astype(np.int16)
    _late_sound_clip(clips / "late.mkv", voice, 0.136)
    (clip,), _ = find_clips(str(clips))
    report = prepare_clip(clip, str(tmp_path / "cache"), encoders, DRAWN)
    (_, window), *_ = _windows(tmp_path / "cache", report)
    samples = voice.astype(np.float32) / 32768
    placed = np.concatenate([np.zeros(round(0.136 * 16000), np.float32), samples])  # on the pictures' clock
    for track, expected_equal in ((placed, True), (samples, False)):
        features = build_speaker_audio(encoders.wav2vec, [prepare_track(track, 16000, 1)]).features
        expected = stack_speaker_windows(features, 0, 9).to(torch.bfloat16)
        assert torch.equal(audio_windows(window["audio"]), expected) is expected_equal


def test_a_video_with_silence_for_a_soundtrack_is_image_to_video_data(tmp_path, encoders):
    clips = tmp_path / "clips"
    clips.mkdir()
    frames = _scene(20, (30, 60, 120), left=True)
    _write(str(clips), "quiet", frames, own_voice=np.zeros(16000, np.float32), caption="a room")
    (clip,), _ = find_clips(str(clips))
    report = prepare_clip(clip, str(tmp_path / "cache"), encoders, PrepareSettings(window=9, resolution="120p"))
    windows = _windows(tmp_path / "cache", report)
    assert len(windows) == 2 and all(info.task == "i2v" and t["audio"].eq(0).all() for info, t in windows)
    assert any("image-to-video" in note for note in report.notes)  # and no face was asked for
