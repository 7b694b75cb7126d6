"""The source video of a dub: frame-rate resampling onto the 25 fps timeline, bucketing like a
reference image, reading files with their soundtrack, shot cuts and the segments they make."""
from __future__ import annotations

import math

import pytest
import torch

from comfyui_multitalk.models.dubbing.shots import detect_cuts, min_shot_frames, shot_starts
from comfyui_multitalk.models.dubbing.source import source_from_images
from comfyui_multitalk.models.dubbing.timing import parse_starts, parse_timed_entries, start_frame, timeline_indices
from comfyui_multitalk.models.dubbing.video_reader import read_source_video
from comfyui_multitalk.models.errors import DubbingInputError
from comfyui_multitalk.models.video_io import write_mp4
from comfyui_multitalk.nodes.dubbing_nodes import MultiTalkSourceVideo


def by_time(count: int, fps: float) -> list[int]:
    """Timeline frame k (k/25 s) shows the source frame presented last at or before k/25 s; as many
    timeline frames as fit in the source's duration count/fps."""
    frames = math.ceil(count * 25 / fps - 1e-9)
    return [math.floor(k * fps / 25 + 1e-9) for k in range(frames)]


@pytest.mark.parametrize("fps", [25.0, 30.0, 24.0, 50.0, 12.5, 30000 / 1001])
def test_timeline_shows_the_source_frame_of_each_instant(fps):
    count = 61
    assert timeline_indices([i / fps for i in range(count)], count / fps) == by_time(count, fps)


def test_a_25_fps_source_maps_one_to_one_as_the_official_indexing():
    # official: the keyframe of audio frame k is the file's frame k (no frame-rate conversion)
    assert timeline_indices([i / 25 for i in range(40)], 40 / 25) == list(range(40))


def test_millisecond_timestamps_do_not_shift_frames():
    times = [round(i / 30, 3) for i in range(45)]  # an mkv's millisecond clock: 0.033, 0.067, ...
    assert timeline_indices(times, 1.5) == by_time(45, 30.0)


def test_images_are_resampled_and_bucketed_like_a_reference(codes):
    images = codes.frames(45, 96, 128)  # 30 fps, ratio 0.75 -> the 120p bucket 176x144 (ratio key 0.82)
    source = source_from_images(images, 30.0, "120p")
    assert (source.height, source.width) == (144, 176) and source.num_frames == 38
    assert codes.read(source.frames) == by_time(45, 30.0) == source.source_indices
    # bucketing as MultiTalk Speakers does it: scale 1.5 -> 144x192, centre crop of 176 columns from 8
    from PIL import Image
    import numpy as np
    pixels = (images[7].numpy() * 255).round().astype("uint8")
    expected = np.array(Image.fromarray(pixels).resize((192, 144), Image.BILINEAR))[:, 8:184]
    assert torch.equal(source.frames[source.source_indices.index(7)], torch.from_numpy(expected))


def test_the_last_frame_repeats_past_the_end(codes):
    source = source_from_images(codes.frames(10, 64, 64), 25.0, "120p")
    assert codes.read(source.clip(6, 8)) == [6, 7, 8, 9, 9, 9, 9, 9]
    assert codes.read(source.clip(2, 6, end=5)) == [2, 3, 4, 4, 4, 4]  # a segment's end repeats its last frame


def test_max_seconds_caps_the_frames(codes):
    assert source_from_images(codes.frames(50, 64, 64), 25.0, "120p", max_frames=20).num_frames == 20


def test_video_file_frames_and_soundtrack_on_one_clock(tmp_path, codes):
    sound = torch.zeros(1, 1, 24000)
    sound[..., 8000:8160] = 0.8  # a click at 0.5 s
    path = str(tmp_path / "source.mp4")
    write_mp4(path, codes.frames(45, 96, 128), 30.0, {"waveform": sound, "sample_rate": 16000})
    source = read_source_video(path, "120p")
    assert source.num_frames == 38 and codes.read(source.frames) == by_time(45, 30.0)
    assert source.source_fps == pytest.approx(30.0)
    wave = source.soundtrack["waveform"][0].abs().mean(0)
    click = int(wave.argmax()) / source.soundtrack["sample_rate"]
    assert abs(click - 0.5) < 0.01  # sample 0 of the soundtrack is the first frame's instant
    assert read_source_video(path, "120p", max_seconds=0.4).num_frames == 10


def test_unreadable_sources_are_named(tmp_path):
    with pytest.raises(DubbingInputError, match="does not exist"):
        read_source_video(str(tmp_path / "missing.mp4"), "480p")
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all")
    with pytest.raises(DubbingInputError, match="broken.mp4"):
        read_source_video(str(bad), "480p")
    with pytest.raises(DubbingInputError, match="32x32 pixels"):
        source_from_images(torch.rand(3, 32, 32, 3), 25.0, "480p")
    with pytest.raises(DubbingInputError, match="frame rate"):
        source_from_images(torch.rand(3, 64, 64, 3), 0.0, "480p")


def shots(lengths: list[int], height: int = 72, width: int = 96) -> torch.Tensor:
    """uint8 frames of consecutive shots, each a textured colour with slow drift and noise."""
    g = torch.Generator().manual_seed(0)
    colours = [(200, 40, 40), (40, 180, 60), (50, 60, 200), (220, 200, 60)]
    parts = []
    for k, n in enumerate(lengths):
        texture = torch.rand(1, height, width, 3, generator=g) * 60 + torch.tensor(colours[k % 4]).float()
        drift = torch.linspace(0, 8, n).view(n, 1, 1, 1) + torch.randn(n, height, width, 3, generator=g) * 2
        parts.append((texture + drift).clamp(0, 255).to(torch.uint8))
    return torch.cat(parts)


def test_shot_cuts_are_found_at_the_first_frame_of_each_shot():
    assert detect_cuts(shots([40, 30, 50])) == [40, 70]
    assert detect_cuts(shots([60])) == []


def test_short_shots_join_the_shot_before():
    assert min_shot_frames(0.5) == 13  # the official's 0.5 s at 25 fps (12.5 frames), rounded up
    assert shot_starts([40, 70], 120, 13) == [0, 40, 70]
    assert shot_starts([40, 45, 70], 120, 13) == [0, 45, 70]  # 40..44 is too short: it joins 0..39
    assert shot_starts([5, 70], 120, 13) == [0, 70]  # a short first shot joins the next
    assert shot_starts([40, 112], 120, 13) == [0, 40]  # so does a short last one, into the one before


def test_source_node_splits_shots_and_gives_the_first_frame(codes):
    frames = shots([30, 20]).float() / 255
    source, first, soundtrack, count, report = MultiTalkSourceVideo().load(
        "120p", True, 27.0, 0.5, 0.0, images=frames, fps=25.0)["result"]
    assert source.shots == [0, 30] and count == 50 and "2 shots" in report
    assert torch.equal(first[0], source.frames[0].float() / 255)
    assert soundtrack["waveform"].shape[-1] == 32000  # silence as long as the source, with a note
    assert any("no soundtrack" in n for n in source.notes)


def test_source_node_refuses_two_or_no_sources(codes):
    node = MultiTalkSourceVideo()
    with pytest.raises(DubbingInputError, match="No source"):
        node.load("120p", False, 27.0, 0.5, 0.0)
    with pytest.raises(DubbingInputError, match="Both video and images"):
        node.load("120p", False, 27.0, 0.5, 0.0, video=object(), images=codes.frames(2))


def test_timeline_entries_and_start_times():
    assert parse_timed_entries("0: calm | 6.5: laughs\n12s: quiet", "prompt timeline") == [
        (0.0, "calm"), (6.5, "laughs"), (12.0, "quiet")]
    assert [start_frame(s) for s in (0, 6.5, 0.04, 0.041)] == [0, 163, 1, 2]  # first frame at or after
    assert parse_starts("0, 2.5; 7", 3, "image timeline") == [0.0, 2.5, 7.0]
    for text, message in [("1: late start", "must start at 0"), ("0: a | 3: b | 2: c", "must increase"),
                          ("0 calm", "no start time"), ("", "empty")]:
        with pytest.raises(DubbingInputError, match=message):
            parse_timed_entries(text, "prompt timeline")
    with pytest.raises(DubbingInputError, match="2 start times for 3"):
        parse_starts("0, 1", 3, "image timeline")
