"""The GPU benchmark's pieces, on a CPU: its FLOP count from the shapes agrees with PyTorch's own
FlopCounterMode, and the whole script runs every section at toy sizes (the device session gets
one try)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from gpu_flops import Shapes, forward_flops  # noqa: E402
from gpu_setup import Window, pass_inputs, random_state  # noqa: E402

OFFICIAL_MIRROR = Path(os.environ.get("MULTITALK_OFFICIAL_MIRROR", "/work/.mirror/MeiGen-AI+MultiTalk/repo"))


def test_flops_from_shapes_match_the_flop_counter():
    from torch.utils.flop_counter import FlopCounterMode

    from comfyui_multitalk.models import load_dit
    from comfyui_multitalk.models.dit.tiny import tiny_dit_config

    cfg = tiny_dit_config(num_layers=2, dim=64, num_heads=4)
    model = load_dit(random_state(cfg, torch.device("cpu"), torch.float32), dtype="fp32", num_heads=4, text_len=16)
    for speakers in (1, 2):
        window = Window(3, 8, 12, speakers)
        args, kwargs = pass_inputs(cfg, window, 1, torch.device("cpu"))
        if speakers == 1:
            kwargs = {**kwargs, "audio": kwargs["audio"][:, :1], "active_speakers": [1]}
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(*args, **kwargs)
        parts = forward_flops(cfg, Shapes(3, 8, 12, speakers, text_len=16))
        counted = counter.get_flop_counts()["Global"]
        attention_counted = any("scaled_dot_product" in str(op) for op in counted)
        expected = sum(parts.values()) - (0 if attention_counted else parts["self_attention"] + parts["cross_attention"])
        assert counter.get_total_flops() == pytest.approx(expected, rel=1e-9)


@pytest.mark.slow
def test_the_benchmark_runs_every_section_at_toy_sizes(tmp_path):
    command = [sys.executable, str(REPO / "benchmarks" / "bench_gpu.py"), "--tiny", "--device", "cpu", "--no-compile",
               "--repeats", "1"]
    if (OFFICIAL_MIRROR / "HEAD").exists():  # the official forward from a snapshot outside the project
        archive = subprocess.run(["git", "-C", str(OFFICIAL_MIRROR), "archive", "HEAD", "wan"], capture_output=True)
        subprocess.run(["tar", "-x", "-C", str(tmp_path)], input=archive.stdout, check=True)
        command += ["--official", str(tmp_path)]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the script finds the checkout itself
    out = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout
    assert " skipped: " not in text, text  # a section that failed or ran out of time
    for row in ("bf16 matrix product", "ours bf16 ", "(a) official settings", "(b) distilled + audio guidance", "VAE encode + decode",
                "ours fp8 (fp8 products)", "(c) (b) + compile + fp8 products", "ours GGUF Q8_0", "(d) (b) under 24 GB"):
        assert row in text, row
    assert "+ magcache" in text and "2 full calls + 2 light" in text  # MagCache skips 2 of 4 steps in (c)
    assert "at the measured matmul rate" in text  # the floor's rate, as the issue defines it
    assert "PyTorch's SDPA picks FLASH_ATTENTION" in text  # CPU SDPA's own kernel, reported
    assert "FLOPs of one forward" in text and "steps x call + VAE" in text and "targets (H200)" in text
    if "--official" in command:
        assert "max |ours - official| / max |official| = " in text
        ratio = float(text.split("max |ours - official| / max |official| = ")[1].split()[0])
        assert ratio < 1e-5  # fp32 on a CPU: the same model


@pytest.mark.slow
def test_the_training_benchmark_runs_from_a_bare_copy_of_the_tree(tmp_path):
    """As on the device: a copy of the tree, no package installed for it; every plan (8-bit AdamW
    too, on the CPU) takes its timed steps at toy sizes."""
    pytest.importorskip("bitsandbytes")
    files = subprocess.run(["git", "-C", str(REPO), "ls-files", "-co", "--exclude-standard"], capture_output=True,
                           text=True, check=True).stdout.split("\n")
    for name in filter(None, files):
        if (REPO / name).is_file():
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name).write_bytes((REPO / name).read_bytes())
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, str(tmp_path / "benchmarks" / "bench_training_gpu.py"), "--config", "tiny",
                          "--plans", "bf16+park+8bit", "fp8+park"], capture_output=True, text=True, timeout=600,
                         env=env, cwd=str(tmp_path.parent))
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [line.split() for line in out.stdout.splitlines() if line.startswith(("bf16+park+8bit", "fp8+park"))]
    assert [row[0] for row in rows] == ["bf16+park+8bit", "fp8+park"], out.stdout
    assert all(row[1] == "cpu" and len(row) >= 5 and float(row[3]) > 0 for row in rows), out.stdout
    assert f"code: {os.path.realpath(tmp_path)}\n" in out.stdout  # the copy's code, not an installed package


def test_an_optional_row_yields_to_the_rows_the_targets_read(capsys):
    import bench_gpu
    from bench_gpu_runs import Section

    ran = []
    sections = [Section("x", "first", 30, lambda: ran.append("first")),
                Section("o", "optional", 30, lambda: ran.append("optional"), optional=True),
                Section("y", "last", 50, lambda: ran.append("last"))]
    for deadline, wanted in ((70, ["first", "last"]), (200, ["first", "optional", "last"]), (40, ["first"])):
        args = bench_gpu.parse(["--device", "cpu", "--deadline-s", str(deadline)])
        bench = bench_gpu.Bench(args, time.perf_counter())
        ran.clear()
        bench_gpu.run_sections(bench, bench_gpu.Report(bench), sections)
        assert ran == wanted, deadline
    assert "optional" in capsys.readouterr().out.split("skipped: the deadline")[0]
