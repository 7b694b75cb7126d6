"""The pack inside a real ComfyUI: node registration, model folders, and a tiny run over /prompt.

Skipped unless COMFYUI_DIR points to a ComfyUI checkout (COMFYUI_PYTHON: the python of its
environment, default: this one). The test starts `main.py --cpu` on a free port with every
folder in a temp dir: the pack is linked into a custom_nodes folder under another name (the
pack must use relative imports only) and the tiny models are found through an
extra_model_paths file. See docs/headless.md.
"""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urljoin

import numpy as np
import pytest
import requests

pytestmark = [pytest.mark.comfyui, pytest.mark.slow]

REPO_ROOT = Path(__file__).resolve().parents[1]
COMFYUI_DIR = os.environ.get("COMFYUI_DIR", "")
PACK_FOLDER = "multitalk_pack_under_test"  # any name: ComfyUI imports the folder under it
SECONDS, FPS = 1.0, 25  # 1 s of audio -> 25 frames
MODEL_FOLDERS = ("diffusion_models", "model_patches", "text_encoders", "clip_vision", "vae", "audio_encoders")


def comfy_python() -> str:
    return os.environ.get("COMFYUI_PYTHON") or sys.executable


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


def server_command(root: Path, port: int) -> list[str]:
    """main.py on CPU with temp folders; optional flags only where this ComfyUI has them."""
    command = [comfy_python(), "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
               "--extra-model-paths-config", str(write_extra_paths(root))]
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


@pytest.fixture(scope="module")
def comfyui(tmp_path_factory):
    """A running ComfyUI with the pack and the tiny models: (url, log path, model file names)."""
    if not COMFYUI_DIR:
        pytest.skip("set COMFYUI_DIR to a ComfyUI checkout to run the real-ComfyUI test")
    if not (Path(COMFYUI_DIR) / "main.py").is_file():
        pytest.skip(f"COMFYUI_DIR={COMFYUI_DIR} has no main.py")
    root = tmp_path_factory.mktemp("comfyui")
    (root / "custom_nodes").mkdir()
    (root / "custom_nodes" / PACK_FOLDER).symlink_to(REPO_ROOT, target_is_directory=True)
    writer = subprocess.run([sys.executable, str(REPO_ROOT / "tests" / "comfyui_tiny_models.py"), str(root / "models")],
                            capture_output=True, text=True, timeout=300)
    assert writer.returncode == 0, writer.stderr
    models = json.loads(writer.stdout)
    port, log_path = free_port(), root / "server.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(server_command(root, port), cwd=COMFYUI_DIR, stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, process, log_path, timeout_s=300)
        yield url, log_path, models
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


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


def test_every_pack_node_is_registered_without_import_errors(comfyui):
    from comfyui_multitalk.nodes import NODE_CLASS_MAPPINGS

    url, log_path, models = comfyui
    info = requests.get(url + "/object_info", timeout=60).json()
    missing = sorted(set(NODE_CLASS_MAPPINGS) - set(info))
    log = log_path.read_text()
    assert not missing, f"not in /object_info: {missing}\n{log[-4000:]}"
    failures = [line for line in log.splitlines() if PACK_FOLDER in line and ("IMPORT FAILED" in line or "Cannot import" in line)]
    assert not failures, "\n".join(failures)
    for node in NODE_CLASS_MAPPINGS:
        assert info[node]["category"].startswith("MultiTalk/"), node
    # The loaders list the files ComfyUI found in their model folders.
    choices = lambda node, name: info[node]["input"]["required"][name][0]  # noqa: E731
    assert models["dit"] in choices("MultiTalkModelLoader", "model")
    assert models["audio_weights"] in choices("MultiTalkModelLoader", "audio_weights")
    assert models["dit_gguf"] in choices("MultiTalkModelLoader", "model")  # GGUF files listed too
    assert models["audio_weights_gguf"] in choices("MultiTalkModelLoader", "audio_weights")
    assert models["wav2vec"] in choices("MultiTalkWav2VecLoader", "model")
    assert models["anytalker_dit"] in choices("MultiTalkModelLoader", "model")  # the released .pth layout
    assert models["anytalker_wav2vec"] in choices("MultiTalkWav2VecLoader", "model")  # inside its HF folder
    assert models["vae"] in choices("MultiTalkVAELoader", "vae")
    # The frontend extension (WEB_DIRECTORY) is listed and served to the browser.
    script = f"/extensions/{PACK_FOLDER}/js/multitalk_notes.js"
    assert script in requests.get(url + "/extensions", timeout=30).json()
    source = requests.get(url + script, timeout=30).text
    assert "MultiTalk.NodeNotes" in source
    # Every module it imports resolves, against the URL it was served from, to a served file.
    imports = re.findall(r'^\s*import\s[^;]*?from\s+"([^"]+)"', source, flags=re.M)
    assert imports
    for target in imports:
        resolved = urljoin(url + script, target)
        assert requests.get(resolved, timeout=30).status_code == 200, f"{target} -> {resolved}"


def tiny_settings(models: dict) -> dict:
    """Inputs to force, per node type, so any two-speaker API workflow runs on the tiny models."""
    return {
        "MultiTalkModelLoader": {"model": models["dit"], "audio_weights": models["audio_weights"], "dtype": "fp32",
                                 "device": "cpu", "offload": False},
        "MultiTalkWav2VecLoader": {"model": models["wav2vec"], "precision": "fp32"},
        "MultiTalkTextEncoderLoader": {"text_encoder": models["text_encoder"], "tokenizer": "", "device": "cpu",
                                       "dtype": "fp32"},
        "MultiTalkClipVisionLoader": {"clip_vision": models["clip_vision"], "device": "cpu", "dtype": "fp32"},
        "MultiTalkVAELoader": {"vae": models["vae"], "device": "cpu", "dtype": "fp32"},
        "MultiTalkSpeakers": {"resolution": "120p"},
        "MultiTalkSampler": {"steps": 2, "mode": "multitalk", "window_frames": 21, "motion_frames": 5,
                             "max_frames": 0, "seed": 1},
    }


def painted_images(folder: Path) -> list[str]:
    """The reference picture twice, each with one speaker painted (alpha 0) as ComfyUI's mask editor does."""
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    paths = []
    for index, (left, right) in enumerate(((20, 140), (180, 300)), start=1):
        alpha = np.full((240, 320, 1), 255, dtype=np.uint8)
        alpha[40:220, left:right] = 0  # LoadImage's MASK = 1 - alpha: 1 on the painted speaker
        path = folder / f"speaker{index}_painted.png"
        Image.fromarray(np.concatenate([pixels, alpha], axis=2), "RGBA").save(path)
        paths.append(str(path))
    return paths


def test_workflow_through_prompt_api(comfyui, tmp_path):
    import av
    import soundfile

    from comfyui_multitalk.client import load_api_workflow, run_workflow

    url, log_path, models = comfyui
    workflow = load_api_workflow(str(REPO_ROOT / "workflows" / "multitalk_two_speakers_api.json"))
    for node in workflow.values():
        node["inputs"].update({k: v for k, v in tiny_settings(models).get(node["class_type"], {}).items()
                               if k in node["inputs"]})
    images = painted_images(tmp_path)  # one per LoadImage node: speaker 1's mask, then speaker 2's
    t = np.arange(int(SECONDS * 16000)) / 16000
    for name, freq in (("a.wav", 220.0), ("b.wav", 330.0)):
        soundfile.write(tmp_path / name, 0.2 * np.sin(2 * np.pi * freq * t) * (1 + np.sin(2 * np.pi * 3 * t)), 16000)
    start = time.monotonic()
    result = run_workflow(url, workflow, images=images,
                          audios=[str(tmp_path / "a.wav"), str(tmp_path / "b.wav")],
                          output_dir=str(tmp_path / "out"), timeout_s=900)
    print(f"prompt {result.prompt_id} ran in {time.monotonic() - start:.1f} s")
    videos = [path for path in result.files if path.endswith((".mp4", ".webm", ".mkv", ".mov"))]
    assert videos, f"no video among {result.files}\n{log_path.read_text()[-3000:]}"
    with av.open(videos[0]) as container:
        frames = sum(1 for _ in container.decode(video=0))
        has_audio = bool(container.streams.audio)
    assert frames == int(SECONDS * FPS)
    assert has_audio
    assert sum(path.endswith(".png") for path in result.files) >= 2  # speaker preview and timeline pictures


def test_anytalker_workflow_through_prompt_api(comfyui, tmp_path):
    """The shipped AnyTalker workflow with the same nodes: the loaders read the family off the files."""
    import av
    import soundfile
    from PIL import Image

    from comfyui_multitalk.cli.workflow_files import shipped_api_workflow
    from comfyui_multitalk.client import load_api_workflow, run_workflow

    url, log_path, models = comfyui
    workflow = load_api_workflow(shipped_api_workflow("anytalker_two_speakers"))
    settings = tiny_settings(models)
    settings["MultiTalkModelLoader"].update(model=models["anytalker_dit"], audio_weights="none")
    settings["MultiTalkWav2VecLoader"].update(model=models["anytalker_wav2vec"])
    settings["MultiTalkSampler"] = {"steps": 1, "seed": 1}  # the workflow's own mode: one pass, as the official
    for node in workflow.values():
        node["inputs"].update({k: v for k, v in settings.get(node["class_type"], {}).items() if k in node["inputs"]})
    picture = tmp_path / "two_people.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (240, 320, 3), dtype=np.uint8)).save(picture)
    t = np.arange(int(SECONDS * 16000)) / 16000
    for name, freq in (("a.wav", 220.0), ("b.wav", 330.0)):
        soundfile.write(tmp_path / name, 0.2 * np.sin(2 * np.pi * freq * t) * (1 + np.sin(2 * np.pi * 3 * t)), 16000)
    result = run_workflow(url, workflow, images=[str(picture)],
                          audios=[str(tmp_path / "a.wav"), str(tmp_path / "b.wav")],
                          output_dir=str(tmp_path / "out"), timeout_s=900)
    videos = [path for path in result.files if path.endswith(".mp4")]
    assert videos, f"no video among {result.files}\n{log_path.read_text()[-3000:]}"
    with av.open(videos[0]) as container:
        frames = sum(1 for _ in container.decode(video=0))
        rate = float(container.streams.video[0].average_rate)
        has_audio = bool(container.streams.audio)
    assert (frames, rate) == (21, 24.0) and has_audio  # 1 s at 24 fps = 24 frames -> 4n+1 = 21


def test_server_validation_errors_reach_the_client(comfyui, tmp_path):
    from comfyui_multitalk.client import PromptRejected, run_workflow

    url, _, _ = comfyui
    workflow = {"1": {"class_type": "LoadAudio", "inputs": {"audio": "not_uploaded.wav"}},
                "2": {"class_type": "PreviewAudio", "inputs": {"audio": ["1", 0]}}}
    with pytest.raises(PromptRejected) as caught:
        run_workflow(url, workflow, output_dir=str(tmp_path), timeout_s=60)
    assert caught.value.node_errors["1"]["class_type"] == "LoadAudio"
    assert "not_uploaded.wav" in caught.value.report()


def test_execution_errors_name_the_node_and_the_file(comfyui, tmp_path):
    from comfyui_multitalk.client import ExecutionFailed, run_workflow

    url, _, _ = comfyui
    missing = tmp_path / "no_such_voice.wav"
    workflow = {"1": {"class_type": "MultiTalkLoadAudio", "inputs": {"path": str(missing)}},
                "2": {"class_type": "PreviewAudio", "inputs": {"audio": ["1", 0]}}}
    with pytest.raises(ExecutionFailed) as caught:
        run_workflow(url, workflow, output_dir=str(tmp_path), timeout_s=60)
    assert (caught.value.node_id, caught.value.node_type) == ("1", "MultiTalkLoadAudio")
    assert "no_such_voice.wav" in str(caught.value)
