"""The pack inside a real ComfyUI: node registration, model folders, the frontend extension and
its imports as the server serves them, the templates, the speaker editor's route, and a tiny run
over /prompt.

Skipped unless COMFYUI_DIR points to a ComfyUI checkout (COMFYUI_PYTHON: the python of its
environment, default: this one); the server is started by tests/comfyui_server.py. See
docs/headless.md.
"""
from __future__ import annotations

import re
import sys
import time
from pathlib import Path
from urllib.parse import urljoin

import numpy as np
import pytest
import requests

sys.path.insert(0, str(Path(__file__).parent))  # the server helper shared with the browser test
from comfyui_server import PACK_FOLDER, painted_images, running_comfyui, tiny_settings, voices  # noqa: E402

pytestmark = [pytest.mark.comfyui, pytest.mark.slow]

SECONDS, FPS = 1.0, 25  # 1 s of audio -> 25 frames
UI_WORKFLOWS = {"multitalk_single_speaker", "multitalk_two_speakers", "multitalk_three_speakers",
                "multitalk_long_video", "multitalk_native_loaders", "multitalk_train_audio_adapter",
                "multitalk_dubbing", "multitalk_dubbing_two_speakers", "multitalk_dubbing_masked",
                "multitalk_prompt_timeline", "anytalker_two_speakers", "anytalker_three_speakers",
                "multitalk_fast_4step"}


@pytest.fixture(scope="module")
def comfyui(tmp_path_factory):
    """A running ComfyUI with the pack and the tiny models: (url, log path, model file names)."""
    with running_comfyui(tmp_path_factory.mktemp("comfyui")) as server:
        yield server.url, server.log_path, server.models


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
    scripts = [path for path in requests.get(url + "/extensions", timeout=30).json()
               if path.startswith(f"/extensions/{PACK_FOLDER}/")]
    assert f"/extensions/{PACK_FOLDER}/js/multitalk_notes.js" in scripts
    assert f"/extensions/{PACK_FOLDER}/js/lib/comfy.js" in scripts
    # Every module each one imports resolves, against the URL it was served from, to a served file.
    checked = set()
    for script in scripts:
        source = requests.get(url + script, timeout=30).text
        for target in re.findall(r'^\s*(?:import|export)\s[^;]*?from\s+"([^"]+)"', source, flags=re.M):
            resolved = urljoin(url + script, target)
            assert requests.get(resolved, timeout=30).status_code == 200, f"{script}: {target} -> {resolved}"
            checked.add(resolved)
    assert url + "/scripts/app.js" in checked and url + "/scripts/api.js" in checked


def test_templates_are_the_ui_workflows_with_pictures(comfyui):
    url, _, _ = comfyui
    listed = requests.get(url + "/workflow_templates", timeout=30).json()[PACK_FOLDER]
    assert set(listed) == UI_WORKFLOWS  # the API forms (workflows/api/) are not offered
    for name in UI_WORKFLOWS:
        workflow = requests.get(f"{url}/api/workflow_templates/{PACK_FOLDER}/{name}.json", timeout=30).json()
        assert workflow["version"] == 0.4 and workflow["nodes"]
        picture = requests.get(f"{url}/api/workflow_templates/{PACK_FOLDER}/{name}.jpg", timeout=30)
        assert picture.status_code == 200 and picture.content[:3] == b"\xff\xd8\xff"  # a JPEG


def test_speaker_editor_route_answers_the_nodes_layout(comfyui, tmp_path):
    url, _, _ = comfyui
    names = []
    for path in painted_images(tmp_path):
        with open(path, "rb") as handle:
            answer = requests.post(url + "/upload/image", files={"image": handle}, timeout=30).json()
        names.append(answer["name"])
    route = url + "/api/multitalk/speakers/layout"
    layout = requests.post(route, json={"image": names[0], "masks": [names[0], names[1], None, None],
                                        "resolution": "240p"}, timeout=60).json()
    assert layout["ok"] and [s["source"] for s in layout["speakers"]] == ["mask", "mask"]
    left, right = (s["box"] for s in layout["speakers"])
    assert left[0] < right[0]  # speaker 1 painted on the left
    refused = requests.post(route, json={"image": "not_uploaded.png"}, timeout=60).json()
    assert refused["ok"] is False and "not_uploaded.png" in refused["error"]


def test_workflow_through_prompt_api(comfyui, tmp_path):
    import av

    from comfyui_multitalk.client import load_api_workflow, run_workflow

    url, log_path, models = comfyui
    from comfyui_multitalk.cli.workflow_files import shipped_api_workflow

    workflow = load_api_workflow(shipped_api_workflow("multitalk_two_speakers"))
    for node in workflow.values():
        node["inputs"].update({k: v for k, v in tiny_settings(models).get(node["class_type"], {}).items()
                               if k in node["inputs"]})
    images = painted_images(tmp_path)  # one per LoadImage node: speaker 1's mask, then speaker 2's
    start = time.monotonic()
    result = run_workflow(url, workflow, images=images, audios=voices(tmp_path, seconds=SECONDS),
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
    # what the nodes show in the browser: the timeline with its soundtrack, the speaker preview
    audio_ui, speakers_ui = result.outputs["20"], result.outputs["21"]
    assert audio_ui["multitalk_timeline"] and audio_ui["multitalk_soundtrack"][0]["filename"].endswith(".wav")
    assert audio_ui["multitalk_timeline_geometry"][0]["duration"] == pytest.approx(SECONDS)
    assert speakers_ui["multitalk_speaker_preview"][0]["type"] == "temp"


# The other templates that make a video, on the tiny models in their own mode. (The native-loaders
# one needs ComfyUI's own loaders, which cannot read the tiny models; training runs on the
# command line in tests/test_cli_training.py.)
OTHER_RUNS = {"multitalk_single_speaker": (1, 1), "multitalk_three_speakers": (1, 3), "multitalk_long_video": (1, 1),
              "multitalk_fast_4step": (1, 1)}


@pytest.mark.parametrize("name", sorted(OTHER_RUNS))
def test_other_templates_run(comfyui, tmp_path, name):
    import av

    from comfyui_multitalk.cli.workflow_files import shipped_api_workflow
    from comfyui_multitalk.client import load_api_workflow, run_workflow

    url, log_path, models = comfyui
    workflow = load_api_workflow(shipped_api_workflow(name))
    settings = tiny_settings(models)
    settings["MultiTalkSampler"].pop("mode")  # each template keeps its own long-video mode
    for node in workflow.values():
        node["inputs"].update({k: v for k, v in settings.get(node["class_type"], {}).items() if k in node["inputs"]})
    pictures, tracks = OTHER_RUNS[name]
    names = tuple(f"voice{k}.wav" for k in range(tracks))
    result = run_workflow(url, workflow, images=painted_images(tmp_path)[:pictures],
                          audios=voices(tmp_path, names, seconds=0.6), output_dir=str(tmp_path / "out"), timeout_s=900)
    (video,) = [path for path in result.files if path.endswith(".mp4")]
    with av.open(video) as container:
        frames = sum(1 for _ in container.decode(video=0))
    expected = int(0.6 * FPS) * (tracks if workflow["20"]["inputs"]["timeline_mode"] == "sequential" else 1)
    assert frames == expected, log_path.read_text()[-2000:]


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
