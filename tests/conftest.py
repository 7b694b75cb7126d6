"""Shared test fixtures: the golden folder beside the checkout, seeded RNG, temp dirs."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("MULTITALK_SHARED_DIR", REPO_ROOT.parent / "shared"))

# Two CPU cores on CI: more threads than cores only adds contention. Under pytest-xdist each of
# the (two) worker processes takes one core.
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED_DIR.is_dir():
        pytest.skip(f"{SHARED_DIR} is absent (golden numbers and samples live there)")
    return SHARED_DIR


@pytest.fixture(scope="session")
def golden_dir(shared_dir: Path) -> Path:
    path = shared_dir / "golden"
    if not path.is_dir():
        pytest.skip(f"{path} is absent")
    return path


@pytest.fixture(scope="session")
def samples_dir(shared_dir: Path) -> Path:
    path = shared_dir / "samples"
    if not path.is_dir():
        pytest.skip(f"{path} is absent")
    return path


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def tiny_dit():
    """A 2-layer width-32 MultiTalk DiT with seeded random weights (fp32, CPU)."""
    from comfyui_multitalk.models import load_dit
    from comfyui_multitalk.models.dit.tiny import random_dit_state_dict, tiny_dit_config

    return load_dit(random_dit_state_dict(tiny_dit_config(), seed=11), num_heads=2, text_len=16)


@pytest.fixture(scope="session")
def tiny_vae(tmp_path_factory):
    """A base-width-8 Wan VAE with seeded random weights, loaded from a file like a real one."""
    from safetensors.torch import save_file

    from comfyui_multitalk.models.encoders.tiny import tiny_vae_state
    from comfyui_multitalk.models.encoders.vae_loader import load_vae

    path = tmp_path_factory.mktemp("vae") / "tiny_wan_vae.safetensors"
    save_file(tiny_vae_state(seed=3), str(path))
    return load_vae(str(path))
