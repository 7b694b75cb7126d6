"""The pack as an artist meets it: ComfyUI's page in a real browser (headless Chromium).

Each shipped template opens through the server's template route with every node, link and widget
intact, lists the missing model files with their download links, overlaps nothing at 100% zoom
and opens on a first screen (1440x900 window) that shows the read-me and the first input. The
speaker editor shows the automatic layout before anything runs and takes a box drawn with the
mouse. The two-speaker workflow runs from the Run button on the tiny models: the sampler shows
the window counter and a latent preview while it runs, the audio node's timeline plays with a
moving cursor, and still nothing overlaps. No console error may come from the pack.

Skipped without COMFYUI_DIR (tests/comfyui_server.py) or without Chromium and chromedriver.
Screenshots go to $MULTITALK_SCREENSHOTS (default: the test's temp folder).
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest
import requests

sys.path.insert(0, str(Path(__file__).parent))  # helpers shared with the other real-ComfyUI tests
from browser_page import BOXES_JS, SCREEN_JS, SET_WIDGETS_JS, STATE_JS, Page, overlapping, skip_without_chromium  # noqa: E402
from comfyui_server import (PACK_FOLDER, painted_images, running_comfyui, skip_without_comfyui,  # noqa: E402
                            tiny_settings, voices)

pytestmark = [pytest.mark.comfyui, pytest.mark.slow]

TEMPLATES = ["multitalk_single_speaker", "multitalk_two_speakers", "multitalk_three_speakers", "multitalk_long_video",
             "multitalk_native_loaders", "multitalk_train_audio_adapter", "multitalk_dubbing",
             "multitalk_dubbing_two_speakers", "multitalk_dubbing_masked", "multitalk_prompt_timeline",
             "anytalker_two_speakers", "anytalker_three_speakers", "multitalk_fast_4step"]
REAL_MODELS = ("wan2.1_i2v_480p_14B_fp16.safetensors", "wav2vec2-chinese-base_fp16.safetensors",
               "clip_vision_h.safetensors", "wan_2.1_vae.safetensors")
# The other downloadable files some templates use (adapters and the text encoder).
MORE_MODELS = {"multitalk.safetensors", "infinitetalk.safetensors", "umt5_xxl_fp8_e4m3fn_scaled.safetensors",
               "wan2.1_i2v_480p_14B_fp8_e4m3fn.safetensors",
               "Wan21_T2V_14B_lightx2v_cfg_step_distill_lora_rank32.safetensors"}
SETTINGS = {"Comfy.TutorialCompleted": True}  # no first-run template dialog


def write_inputs(folder: Path) -> None:
    """The pictures and voices the shipped workflows name, and painted pictures for the run."""
    from PIL import Image

    from comfyui_multitalk.cli.demo_media import draw_two_people

    folder.mkdir(parents=True, exist_ok=True)
    for name in ("portrait.png", "two_speakers.png", "three_speakers.png"):
        Image.fromarray(draw_two_people(480, 320)).save(folder / name)
    voices(folder, ("speech.wav", "long_speech.wav", "speaker1.wav", "speaker2.wav", "speaker3.wav"))
    voices(folder, ("a.wav", "b.wav"))
    painted_images(folder)


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    skip_without_comfyui()
    skip_without_chromium()
    root = tmp_path_factory.mktemp("comfyui_browser")
    write_inputs(root / "input")
    shots = Path(os.environ.get("MULTITALK_SCREENSHOTS") or root / "screenshots")
    with running_comfyui(root, extra_args=("--preview-method", "auto"), settings=SETTINGS) as server:
        page = Page(server.url, shots)
        try:
            yield server, page
        finally:
            page.close()


def template(url: str, name: str) -> dict:
    return requests.get(f"{url}/api/workflow_templates/{PACK_FOLDER}/{name}.json", timeout=30).json()


def open_template(page: Page, url: str, name: str) -> tuple[dict, str]:
    workflow = template(url, name)
    page.load(workflow)
    return workflow, page.close_dialogs()


def at_full_size_nothing_overlaps(page: Page) -> list:
    page.view(1.0, (0, 0))
    time.sleep(1)
    return overlapping(page.js(BOXES_JS))


@pytest.mark.parametrize("name", TEMPLATES)
def test_template_opens_intact_laid_out_and_says_what_is_missing(session, name):
    server, page = session
    extensions = page.js("return window.app.extensions.map((e) => e.name)")
    assert {"MultiTalk.NodeNotes", "MultiTalk.Progress", "MultiTalk.SpeakerEditor", "MultiTalk.Timeline"} <= set(extensions)
    workflow, dialog = open_template(page, server.url, name)
    listed = {m["name"] for n in workflow["nodes"] for m in n.get("properties", {}).get("models", [])}
    assert listed and listed <= set(REAL_MODELS) | MORE_MODELS
    for model in listed:  # the user has none of them: each is listed with where it goes
        assert model in dialog, f"{model} not in the missing-models dialog:\n{dialog}"
    state = page.js(STATE_JS)
    assert {int(k): v["values"] for k, v in state["nodes"].items()} == \
        {n["id"]: n.get("widgets_values", []) for n in workflow["nodes"]}
    assert sorted(state["links"]) == sorted(link[:5] for link in workflow["links"])
    page.shot(f"{name}_first_screen")
    for node_id in (next(n["id"] for n in workflow["nodes"] if n["type"] == "MarkdownNote"),
                    min((n for n in workflow["nodes"] if n["type"] in ("LoadImage", "LoadVideo",
                                                                         "MultiTalkPrepareDataset")),
                        key=lambda n: (n["pos"][0], n["pos"][1]))["id"]):
        where = page.js(SCREEN_JS, node_id)
        (x0, y0, x1, y1), (v0, w0, v1, w1) = where["node"], where["view"]
        assert v0 <= x0 and x1 <= v1 and w0 <= y0 and y1 <= w1, f"node {node_id} off the first screen: {where}"
    assert at_full_size_nothing_overlaps(page) == []
    assert page.pack_errors(PACK_FOLDER) == []


def editor_speakers(page: Page, node_id: int = 21) -> list:
    return page.wait_for("const e = window.app.graph.getNodeById(arguments[0]).multitalkEditor;"
                         "return e?.layout?.speakers?.map((s) => s.source);", 60, node_id)


def test_speaker_editor_shows_detection_and_takes_a_drawn_box(session):
    from selenium.webdriver.common.action_chains import ActionChains

    server, page = session
    open_template(page, server.url, "multitalk_three_speakers")
    page.focus(21, down=330)  # the editor below the node's widgets
    assert len(editor_speakers(page)) == 3  # placed before anything ran (the pack's server route)
    page.shot("speaker_editor_before")
    canvas = page.js("return window.app.graph.getNodeById(21).multitalkEditor.canvas")
    size = canvas.size
    chain = ActionChains(page.driver).move_to_element_with_offset(canvas, -size["width"] // 2 + 30,
                                                                  -size["height"] // 2 + 30)
    chain.click_and_hold().move_by_offset(90, 110).release().perform()
    boxes = page.wait_for("return window.app.graph.getNodeById(21).widgets.find((w) => w.name === 'boxes').value", 10)
    assert len(boxes.splitlines()[0].split(",")) == 4  # speaker 1 now has a box, in the node's own input
    page.wait_for("return window.app.graph.getNodeById(21).multitalkEditor.layout?.speakers[0].source === 'box'", 30)
    page.shot("speaker_editor_box_drawn")
    assert page.pack_errors(PACK_FOLDER) == []


def watch_run(page: Page, url: str, timeout_s: float = 900) -> dict:
    """Poll the page while the queue runs: the sampler's progress texts and whether it had a preview."""
    seen = {"progress": set(), "preview": False}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        sample = page.js("const n = window.app.graph.getNodeById(30);"
                         "return [n.multitalkProgress ?? '', Object.keys(window.app.nodePreviewImages ?? {})];")
        seen["progress"].add(sample[0])
        seen["preview"] |= any(key.split(":")[-1] == "30" for key in sample[1])
        queue = requests.get(url + "/queue", timeout=30).json()
        if not queue["queue_running"] and not queue["queue_pending"]:
            return seen
        time.sleep(0.5)
    raise AssertionError("the run did not finish")


def test_two_speakers_run_from_the_run_button(session):
    server, page = session
    open_template(page, server.url, "multitalk_two_speakers")
    page.js(SET_WIDGETS_JS, tiny_settings(server.models),
            {1: {"image": "speaker1_painted.png"}, 5: {"image": "speaker2_painted.png"}, 2: {"audio": "a.wav"},
             3: {"audio": "b.wav"}})
    page.js("document.querySelector('.comfyui-queue-button .p-splitbutton-button').click()")
    page.wait_for("return fetch('/queue').then((r) => r.json()).then((q) => q.queue_running.length > 0)", 60)
    seen = watch_run(page, server.url)
    history = requests.get(server.url + "/history", timeout=30).json()
    (record,) = history.values()
    assert record["status"]["status_str"] == "success", json.dumps(record["status"])[-2000:]
    texts = " | ".join(sorted(seen["progress"]))  # what the sampler's title bar said while it ran
    assert "window 2/2" in texts and ", step " in texts and "decoding" in texts, texts
    assert seen["preview"]  # ComfyUI's latent preview of the window, on the sampler node
    page.focus(20)
    timeline = page.wait_for("const v = window.app.graph.getNodeById(20).multitalkTimeline;"
                             "return v.image.naturalWidth > 0 && !v.play.disabled && v.cursor.style.left;", 30)
    page.js("window.app.graph.getNodeById(20).multitalkTimeline.play.click()")
    moved = page.wait_for("const v = window.app.graph.getNodeById(20).multitalkTimeline;"
                          "return v.audio.currentTime > 0.2 && v.cursor.style.left;", 20)
    assert moved != timeline  # the cursor runs with the sound
    page.shot("two_speakers_timeline_playing")
    page.focus(30, 0.8)
    page.shot("two_speakers_sampler_after_run")
    assert at_full_size_nothing_overlaps(page) == []
    page.view(0.5, (0, 0))
    page.shot("two_speakers_after_run")
    assert page.pack_errors(PACK_FOLDER) == []
