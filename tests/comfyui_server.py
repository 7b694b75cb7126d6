"""A real ComfyUI with the pack, for the opt-in tests (test_comfyui_integration.py,
test_comfyui_browser.py). See docs/headless.md.

`main.py --cpu` runs on a free port with every folder in a temp dir: the pack is linked into a
custom_nodes folder under another name (the pack must work under any folder name) and the tiny
models (tests/comfyui_tiny_models.py) are found through an extra_model_paths file. COMFYUI_DIR
is the ComfyUI checkout, COMFYUI_PYTHON the python of its environment (default: this one).
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, NamedTuple

import pytest
import requests

REPO_ROOT = Path(__file__).resolve().parents[1]
COMFYUI_DIR = os.environ.get("COMFYUI_DIR", "")
PACK_FOLDER = "multitalk_pack_under_test"  # any name: ComfyUI imports the folder under it
MODEL_FOLDERS = ("diffusion_models", "model_patches", "text_encoders", "clip_vision", "vae", "audio_encoders", "loras")


class Server(NamedTuple):
    url: str
    log_path: Path
    models: dict  # {TinyWeights field: file name in its models folder}
    root: Path  # input/, output/, temp/, user/ live here


def comfy_python() -> str:
    return os.environ.get("COMFYUI_PYTHON") or sys.executable


def skip_without_comfyui() -> None:
    if not COMFYUI_DIR:
        pytest.skip("set COMFYUI_DIR to a ComfyUI checkout to run the real-ComfyUI tests")
    if not (Path(COMFYUI_DIR) / "main.py").is_file():
        pytest.skip(f"COMFYUI_DIR={COMFYUI_DIR} has no main.py")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_extra_paths(root: Path) -> Path:
    lines = ["multitalk_test:", f"    base_path: {root}", "    custom_nodes: custom_nodes"]
    lines += [f"    {folder}: models/{folder}" for folder in MODEL_FOLDERS]
    path = root / "extra_model_paths.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def server_command(root: Path, port: int, extra: tuple = ()) -> list[str]:
    """main.py on CPU with temp folders; optional flags only where this ComfyUI has them."""
    command = [comfy_python(), "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
               "--extra-model-paths-config", str(write_extra_paths(root)), *extra]
    help_text = subprocess.run([comfy_python(), "main.py", "--help"], cwd=COMFYUI_DIR, capture_output=True,
                               text=True, timeout=120).stdout
    for flag, value in (("--input-directory", root / "input"), ("--output-directory", root / "output"),
                        ("--temp-directory", root / "temp"), ("--user-directory", root / "user"),
                        ("--database-url", "sqlite:///:memory:")):
        if flag in help_text:
            if isinstance(value, Path):
                value.mkdir(exist_ok=True)
            command += [flag, str(value)]
    return command


def wait_until_up(url: str, process: subprocess.Popen, log_path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"ComfyUI exited with {process.returncode}:\n{log_path.read_text()[-4000:]}")
        try:
            if requests.get(url + "/system_stats", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(1)
    pytest.fail(f"ComfyUI did not answer within {timeout_s} s:\n{log_path.read_text()[-4000:]}")


@contextmanager
def running_comfyui(root: Path, extra_args: tuple = (), settings: dict | None = None) -> Iterator[Server]:
    """Start ComfyUI with the pack and the tiny models under `root`; stop it afterwards."""
    skip_without_comfyui()
    (root / "custom_nodes").mkdir(parents=True, exist_ok=True)
    (root / "custom_nodes" / PACK_FOLDER).symlink_to(REPO_ROOT, target_is_directory=True)
    if settings:  # the frontend's user settings (e.g. no first-run template dialog)
        (root / "user" / "default").mkdir(parents=True, exist_ok=True)
        (root / "user" / "default" / "comfy.settings.json").write_text(json.dumps(settings))
    writer = subprocess.run([sys.executable, str(REPO_ROOT / "tests" / "comfyui_tiny_models.py"), str(root / "models")],
                            capture_output=True, text=True, timeout=300)
    assert writer.returncode == 0, writer.stderr
    models = json.loads(writer.stdout)
    port, log_path = free_port(), root / "server.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(server_command(root, port, extra_args), cwd=COMFYUI_DIR, stdout=log,
                                   stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, process, log_path, timeout_s=300)
        yield Server(url, log_path, models, root)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def tiny_settings(models: dict) -> dict:
    """Inputs to force, per node type, so any two-speaker workflow runs on the tiny models."""
    return {
        "MultiTalkModelLoader": {"model": models["dit"], "audio_weights": models["audio_weights"], "dtype": "fp32",
                                 "device": "cpu", "offload": False},
        "MultiTalkLoraLoader": {"lora": models["lora"]},
        "MultiTalkWav2VecLoader": {"model": models["wav2vec"], "precision": "fp32"},
        "MultiTalkTextEncoderLoader": {"text_encoder": models["text_encoder"], "tokenizer": "", "device": "cpu",
                                       "dtype": "fp32"},
        "MultiTalkClipVisionLoader": {"clip_vision": models["clip_vision"], "device": "cpu", "dtype": "fp32"},
        "MultiTalkVAELoader": {"vae": models["vae"], "device": "cpu", "dtype": "fp32"},
        "MultiTalkSpeakers": {"resolution": "120p"},
        "MultiTalkSampler": {"steps": 2, "mode": "multitalk", "window_frames": 21, "motion_frames": 5,
                             "max_frames": 0, "seed": 1},
    }


def painted_images(folder: Path, width: int = 320, height: int = 240) -> list[str]:
    """A reference picture twice, each with one speaker painted (alpha 0) as ComfyUI's mask editor
    does: speaker 1 on the left, speaker 2 on the right."""
    from PIL import Image

    import numpy as np

    pixels = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    paths = []
    for index, (left, right) in enumerate(((width // 16, 7 * width // 16), (9 * width // 16, 15 * width // 16)), 1):
        alpha = np.full((height, width, 1), 255, dtype=np.uint8)
        alpha[height // 6:, left:right] = 0  # LoadImage's MASK = 1 - alpha: 1 on the painted speaker
        path = folder / f"speaker{index}_painted.png"
        Image.fromarray(np.concatenate([pixels, alpha], axis=2), "RGBA").save(path)
        paths.append(str(path))
    return paths


def voices(folder: Path, names: tuple = ("a.wav", "b.wav"), seconds: float = 1.0) -> list[str]:
    import numpy as np
    import soundfile

    t = np.arange(int(seconds * 16000)) / 16000
    paths = []
    for k, name in enumerate(names):
        freq = 220.0 + 110.0 * k
        soundfile.write(folder / name, 0.2 * np.sin(2 * np.pi * freq * t) * (1 + np.sin(2 * np.pi * 3 * t)), 16000)
        paths.append(str(folder / name))
    return paths
