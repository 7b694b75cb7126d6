"""The MultiTalk DiT under a real ComfyUI's model manager (skipped unless COMFYUI_DIR is set):
listed by ComfyUI, unloaded by it when asked, loaded again by the next run; encoders ask ComfyUI
for memory. The check runs in ComfyUI's own environment (COMFYUI_PYTHON)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.comfyui]
REPO = Path(__file__).resolve().parents[1]
COMFYUI_DIR = os.environ.get("COMFYUI_DIR", "")


def test_comfyui_manages_the_dit(tmp_path):
    if not COMFYUI_DIR or not (Path(COMFYUI_DIR) / "main.py").is_file():
        pytest.skip("set COMFYUI_DIR to a ComfyUI checkout to run the real-ComfyUI test")
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "comfyui_multitalk").symlink_to(REPO, target_is_directory=True)
    env = {**os.environ, "PYTHONPATH": str(package)}
    out = subprocess.run([os.environ.get("COMFYUI_PYTHON") or sys.executable,
                          str(REPO / "tests" / "comfyui_model_manager_check.py"), COMFYUI_DIR],
                         cwd=COMFYUI_DIR, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    facts = dict(line.split(": ", 1) for line in out.stdout.splitlines() if ": " in line)
    assert facts == {"registered": "True", "sizes": "True", "unloaded": "True", "reloaded": "True",
                     "encoder request": "True"}, out.stdout
