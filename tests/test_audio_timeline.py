"""Timeline arithmetic, mixing, windows, voice activity and the timeline picture."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from comfyui_multitalk.models.audio import (
    build_timeline,
    draw_timeline,
    frames_for_samples,
    mix_tracks,
    parse_seconds_list,
    speaker_color,
    stack_speaker_windows,
    voice_activity,
    window_features,
)
from comfyui_multitalk.models.errors import AudioInputError


def _tracks():
    return [np.full(16000, 0.1, np.float32), np.full(8000, 0.2, np.float32), np.full(4000, 0.3, np.float32)]


def test_parallel_pads_to_longest():
    line = build_timeline(_tracks(), "parallel", fps=25)
    assert line.starts == [0, 0, 0] and line.total_samples == 16000 and line.num_frames == 25
    assert line.placed[1][:8000].min() == 0.2 and line.placed[1][8000:].max() == 0.0


def test_sequential_is_exact_to_the_sample():
    line = build_timeline(_tracks(), "sequential", fps=25)
    assert line.starts == [0, 16000, 24000] and line.total_samples == 28000
    assert line.num_frames == int(28000 / 16000 * 25) == 43
    second = line.placed[1]
    assert second[15999] == 0.0 and second[16000] == 0.2 and second[23999] == 0.2 and second[24000] == 0.0
    assert np.count_nonzero(line.placed[2]) == 4000 and line.placed[2][24000] == 0.3


def test_offsets_and_frame_override():
    offsets = parse_seconds_list("0; 2.5 0.25", 3, "offsets", require_all=True)
    line = build_timeline(_tracks(), "offsets", fps=25, offsets_s=offsets)
    assert line.starts == [0, 40000, 4000] and line.total_samples == 48000 and line.num_frames == 75
    cut = build_timeline(_tracks(), "offsets", fps=25, offsets_s=offsets, num_frames=10)
    assert cut.total_samples == 6400 and cut.num_frames == 10 and cut.lengths == [6400, 0, 2400]
    padded = build_timeline(_tracks(), "parallel", fps=25, num_frames=50)
    assert padded.total_samples == 32000 and padded.placed[0][16000:].max() == 0.0


@pytest.mark.parametrize(
    "text, pattern",
    [("0, x", "'x' \\(track 2\\) is not a number"), ("0, -1, 2", "track 2 has -1 seconds"),
     ("0", "1 values \\('0'\\) for 3 audio tracks"), ("0 1 2 3", "4 values")],
)
def test_offset_errors_name_track_and_value(text, pattern):
    with pytest.raises(AudioInputError, match=pattern):
        parse_seconds_list(text, 3, "offsets", require_all=True)


def test_frame_count_formula_matches_official():
    assert frames_for_samples(20800, 25) == 32  # 1.3 s -> int(32.5)
    assert frames_for_samples(639, 25) == 0 and frames_for_samples(640, 25) == 1
    with pytest.raises(AudioInputError, match="less than one video frame"):
        build_timeline([np.ones(100, np.float32)], "parallel", fps=25)


def test_mix_never_clips():
    a, b = np.full(10, 0.8, np.float32), np.full(10, 0.6, np.float32)
    mixed = mix_tracks([a, b])
    assert np.isclose(np.abs(mixed).max(), 1.0) and np.allclose(mixed, (a + b) / 1.4)
    quiet = mix_tracks([a * 0.5, b * 0.5])
    assert np.allclose(quiet, 0.7)


def test_windows_clamp_at_both_ends():
    feats = torch.arange(6, dtype=torch.float32)[:, None, None].expand(6, 2, 3)  # [T=6, L, C]
    win = window_features(feats, 0, 3)
    assert win.shape == (3, 5, 2, 3)
    assert win[:, :, 0, 0].tolist() == [[0, 0, 0, 1, 2], [0, 0, 1, 2, 3], [0, 1, 2, 3, 4]]
    tail = window_features(feats, 4, 4)  # runs 2 frames past the end
    assert tail[:, :, 0, 0].tolist() == [[2, 3, 4, 5, 5], [3, 4, 5, 5, 5], [4, 5, 5, 5, 5], [5, 5, 5, 5, 5]]
    stacked = stack_speaker_windows([feats, feats + 10], 1, 2)
    assert stacked.shape == (2, 2, 5, 2, 3) and stacked[1, 0, 2, 0, 0] == 11


def test_voice_activity_follows_bursts():
    rate, fps = 16000, 25
    t = np.arange(4 * rate) / rate
    track = np.zeros_like(t, dtype=np.float32)
    on = (t >= 1.0) & (t < 2.0) | (t >= 3.0) & (t < 3.5)
    track[on] = 0.1 * np.sin(2 * np.pi * 200 * t[on])
    track += 1e-5 * np.random.default_rng(0).standard_normal(t.size).astype(np.float32)
    active = voice_activity(track, 100, fps)
    expected = torch.zeros(100, dtype=torch.bool)
    expected[25:50] = True
    expected[75:88] = True
    assert torch.equal(active, expected)
    assert not voice_activity(np.zeros(16000, np.float32), 25, fps).any()


def test_timeline_picture_rows_and_colours():
    activity = torch.zeros(2, 100, dtype=torch.bool)
    activity[0, :50] = True
    activity[1, 50:] = True
    img = draw_timeline(activity, fps=25)
    assert img.shape[0] == 1 and img.shape[3] == 3 and img.dtype == torch.float32
    assert 0.0 <= img.min() and img.max() <= 1.0
    h, w = img.shape[1:3]
    assert h == 2 * 44 + 30 and w == 1024
    row1, row2 = img[0, 22], img[0, 44 + 22]  # centre lines of the two rows
    left, right = 56 + 100, 1024 - 100  # inside the first and second half of the plot
    dim = lambda k: torch.tensor([int(c * 0.55) for c in speaker_color(k)]) / 255.0  # noqa: E731
    assert torch.allclose(row1[left], dim(0), atol=1 / 255) and not torch.allclose(row1[right], dim(0), atol=1 / 255)
    assert torch.allclose(row2[right], dim(1), atol=1 / 255) and not torch.allclose(row2[left], dim(1), atol=1 / 255)
