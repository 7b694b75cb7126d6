"""The tiny DiT of the loader tests: its random weights and inputs as module fixtures (import them
into a test module by name), the sizes every load passes, and the run helper."""
from __future__ import annotations

import pytest

from comfyui_multitalk.models.dit.tiny import random_dit_state_dict, run_tiny_dit, tiny_dit_config, tiny_dit_inputs

HEADS = dict(num_heads=2, text_len=16)

run = run_tiny_dit


@pytest.fixture(scope="module")
def weights():
    return random_dit_state_dict(tiny_dit_config(), seed=1)


@pytest.fixture(scope="module")
def inputs():
    return tiny_dit_inputs()
