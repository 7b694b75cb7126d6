"""End to end: the demo runs the shipped two-speaker workflow on tiny random weights."""
from __future__ import annotations

import pytest

from comfyui_multitalk.cli.demo import NOISE_NOTE, DemoSettings, run_demo
from comfyui_multitalk.cli.demo_media import SAMPLE_RATE
from comfyui_multitalk.models.video_io import read_video_frames


@pytest.mark.slow
def test_demo_writes_video_with_soundtrack_preview_and_timeline(tmp_path, monkeypatch):
    monkeypatch.setenv("MULTITALK_QUIET", "1")
    settings = DemoSettings(seconds=0.8, steps=1, window=21, motion_frames=5)
    lines: list[str] = []
    saved = run_demo(str(tmp_path / "demo.mp4"), settings=settings, log=lines.append)
    assert saved == [str(tmp_path / "demo.mp4"), str(tmp_path / "demo_timeline.png"),
                     str(tmp_path / "demo_speakers.png")]
    audio_frames = int(int(settings.seconds * SAMPLE_RATE) / SAMPLE_RATE * 25)
    frames, fps, seconds = read_video_frames(saved[0])
    assert (frames, fps) == (audio_frames, 25.0)
    assert seconds is not None and abs(seconds - frames / 25) < 0.1  # the mixed soundtrack, trimmed to the frames
    assert lines[-1] == NOISE_NOTE and any(line.startswith("Video: ") for line in lines)
    assert all(p.stat().st_size > 1000 for p in tmp_path.iterdir())
