"""Scaling out with PyTorch's own engine: `torchrun` starts 2 gloo processes (CPU) that train the
FSDP-sharded adapter, each on its half of every batch; the result equals one process training
the whole batches, and its resume state continues in a single process."""
from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from comfyui_multitalk.models.dit.tiny import save_tiny_dit
from comfyui_multitalk.models.training.tiny import tiny_training_dit_config, write_synthetic_cache


def _train(args: list[str], processes: int = 1) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MULTITALK_QUIET": "1"}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"] \
        if processes > 1 else [sys.executable]
    done = subprocess.run(launcher + ["-m", "comfyui_multitalk", "train", *args], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def _log(adapter: str, column: str) -> list[float]:
    with open(adapter.replace(".safetensors", ".log.csv"), newline="") as handle:
        return [float(row[column]) for row in csv.DictReader(handle) if row[column]]


@pytest.mark.slow
def test_two_gloo_processes_train_what_one_process_trains(tmp_path):
    base, audio = save_tiny_dit(str(tmp_path), tiny_training_dit_config(), seed=1)
    cache = write_synthetic_cache(str(tmp_path / "cache"), windows=6, frames=9, latent_size=(4, 4), silent_windows=1)
    common = ["--model", base, "--audio-weights", audio, "--cache", cache, "--dtype", "fp32", "--autocast", "off",
              "--learning-rate", "1e-3", "--warmup-steps", "1", "--save-every", "0", "--save-dtype", "fp32",
              "--zero-audio-share", "0.3", "--continuation-share", "0.5", "--gradient-checkpointing", "on",
              "--max-grad-norm", "0.05", "--seed", "3", "--ema-decay", "0.5", "--validation-windows", "1",
              "--validation-every", "2"]
    single, shared = str(tmp_path / "single.safetensors"), str(tmp_path / "shared.safetensors")
    _train(common + ["--steps", "3", "--batch-size", "2", "--output", single])
    out = _train(common + ["--steps", "2", "--batch-size", "1", "--output", shared], processes=2)
    assert out.count("adapter:") == 1  # process 0 reports and writes

    state = torch.load(shared.replace(".safetensors", ".resume.pt"), weights_only=True)
    assert state["step"] == 2 and state["settings"]["processes"] == 2
    # The resume state of the 2-process run continues in 2 processes, and in one (its batch of 2 is the
    # same data).
    again = str(tmp_path / "again.safetensors")
    for suffix in (".resume.pt", ".log.csv"):
        shutil.copy(shared.replace(".safetensors", suffix), again.replace(".safetensors", suffix))
    _train(common + ["--steps", "3", "--batch-size", "1", "--output", again], processes=2)
    _train(common + ["--steps", "3", "--batch-size", "2", "--output", shared])
    assert _log(shared, "loss") == pytest.approx(_log(single, "loss"), rel=1e-5)
    assert _log(again, "loss") == pytest.approx(_log(single, "loss"), rel=1e-5)
    assert len(_log(single, "val_loss")) == 2  # steps 2 and 3 (the last)
    assert _log(shared, "val_loss") == pytest.approx(_log(single, "val_loss"), rel=1e-5)
    # Averaged, not summed, gradients: the norms (before clipping to 0.05) agree too.
    assert _log(shared, "grad_norm") == pytest.approx(_log(single, "grad_norm"), rel=1e-4)
    assert min(_log(single, "grad_norm")) > 0.05
    for name in ("", "_ema"):
        one = load_file(single.replace(".safetensors", f"{name}.safetensors"))
        for other in (shared, again):
            two = load_file(other.replace(".safetensors", f"{name}.safetensors"))
            assert one.keys() == two.keys() and len(one) > 0
            for key in one:  # 3 AdamW steps of 1e-3: equal to 1% of a step (summation order differs)
                torch.testing.assert_close(two[key], one[key], rtol=0, atol=1e-5)


@pytest.mark.parametrize("wait", [True, False])
def test_leaving_tears_the_process_group_down(wait, monkeypatch):
    """A process leaves its group before exit (gloo threads left running can abort a finished run)."""
    import socket

    import torch.distributed as dist

    from comfyui_multitalk.models.training.distributed import leave_process_group

    with socket.socket() as probe:  # a free port on this machine for the one-process group
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(port))
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        leave_process_group(wait=wait)
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    leave_process_group()  # without a group: nothing to do
