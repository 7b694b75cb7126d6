"""The shipped workflows: current with their descriptions, valid against the node definitions,
UI and API forms saying the same thing, each one built as its topic requires; offered as
templates (UI forms only, each with a picture), carrying where to get every model file, and laid
out so that nothing overlaps before or after a run and the first screen says what to do."""
from __future__ import annotations

import copy
import glob
import json
import os
import re
from pathlib import Path

import pytest

from comfyui_multitalk.cli.native_specs import NATIVE_SPECS, UI_ONLY_NODES, is_widget
from comfyui_multitalk.cli.registry import NodeRegistry
from comfyui_multitalk.cli.validate import validate_prompt
from comfyui_multitalk.cli.workflow_files import WORKFLOWS_DIR, rendered_files, shipped_api_workflow, stale_files
from comfyui_multitalk.cli.workflow_layout import GROWS_AFTER_RUN, TITLE_HEIGHT, overlaps, visible_area

NAMES = ["multitalk_single_speaker", "multitalk_two_speakers", "multitalk_three_speakers", "multitalk_long_video",
         "multitalk_native_loaders", "multitalk_train_audio_adapter"]
DUBBING = ["multitalk_dubbing", "multitalk_dubbing_two_speakers", "multitalk_dubbing_masked",
           "multitalk_prompt_timeline"]
ANYTALKER = ["anytalker_two_speakers", "anytalker_three_speakers"]
FAST = ["multitalk_fast_4step"]
GENERATION = NAMES[:-1] + DUBBING + ANYTALKER + FAST  # every workflow but the training one makes a video
NAMES = NAMES + DUBBING + ANYTALKER + FAST
REGISTRY = NodeRegistry()


def _load(name: str) -> dict:
    return json.loads((Path(WORKFLOWS_DIR) / name).read_text(encoding="utf-8"))


def _api(name: str) -> dict:
    return json.loads(Path(shipped_api_workflow(name)).read_text(encoding="utf-8"))


def _ui(name: str) -> dict:
    return _load(f"{name}.json")


def _by_class(prompt: dict, class_type: str) -> list[dict]:
    return [node for node in prompt.values() if node["class_type"] == class_type]


def test_committed_files_are_what_the_descriptions_build():
    assert sorted(rendered_files()) == sorted([f"{n}.json" for n in NAMES] + [f"api/{n}_api.json" for n in NAMES])
    assert stale_files() == [], "run: python -m comfyui_multitalk workflows"


def test_stale_check_sees_a_wrong_or_missing_thumbnail(tmp_path):
    from comfyui_multitalk.cli.workflow_files import write_workflow_files

    write_workflow_files(str(tmp_path))
    assert stale_files(str(tmp_path)) == []
    (tmp_path / f"{NAMES[0]}.jpg").write_bytes((tmp_path / f"{NAMES[1]}.jpg").read_bytes())
    os.remove(tmp_path / f"{NAMES[2]}.jpg")
    assert sorted(stale_files(str(tmp_path))) == [f"{NAMES[0]}.jpg", f"{NAMES[2]}.jpg"]


def test_template_browser_offers_the_ui_workflows_each_with_a_picture():
    from PIL import Image

    # ComfyUI lists <pack>/workflows/*.json (app/custom_node_manager.py): the UI forms only
    listed = sorted(Path(p).stem for p in glob.glob(os.path.join(WORKFLOWS_DIR, "*.json")))
    assert listed == sorted(NAMES)
    for name in NAMES:
        ui = _ui(name)
        assert ui["version"] == 0.4 and ui["nodes"]  # what the template loader opens
        with Image.open(Path(WORKFLOWS_DIR) / f"{name}.jpg") as picture:  # the browser asks for <name>.jpg
            assert picture.format == "JPEG" and picture.size == (512, 512)
        assert Path(shipped_api_workflow(name)).parent.name == "api"


@pytest.mark.parametrize("name", NAMES)
def test_api_workflow_is_valid(name):
    prompt = _api(name)
    assert validate_prompt(prompt, REGISTRY) == []
    for node in prompt.values():  # every widget is written out, as the frontend exports it
        spec = REGISTRY.spec(node["class_type"])
        assert set(spec.widget_names()) <= set(node["inputs"]), node["class_type"]


def ui_to_api(ui: dict) -> dict:
    """An independent reading of the UI format: widgets by declaration order, links by id."""
    links = {link[0]: link for link in ui["links"]}
    prompt = {}
    for node in ui["nodes"]:
        if node["type"] in UI_ONLY_NODES:
            continue
        spec = REGISTRY.spec(node["type"])
        values = iter(node["widgets_values"])
        inputs = {}
        for name in spec.widget_names():
            inputs[name] = next(values)
            if name == "seed":
                assert next(values) in ("fixed", "increment", "decrement", "randomize")
        assert list(values) == list(spec.ui_extra_widgets)
        for entry in node["inputs"]:
            if entry["link"] is not None:
                _, source, slot, target, target_slot, _ = links[entry["link"]]
                assert target == node["id"] and node["inputs"][target_slot] is entry
                inputs[entry["name"]] = [str(source), slot]
        prompt[str(node["id"])] = {"inputs": inputs, "class_type": node["type"], "_meta": {"title": node["title"]}}
    return prompt


@pytest.mark.parametrize("name", NAMES)
def test_ui_and_api_forms_agree(name):
    assert ui_to_api(_ui(name)) == _api(name)


@pytest.mark.parametrize("name", NAMES)
def test_ui_links_are_consistent(name):
    ui = _ui(name)
    nodes = {node["id"]: node for node in ui["nodes"]}
    assert ui["last_link_id"] == len(ui["links"]) and ui["last_node_id"] == max(nodes)
    for link_id, source, slot, target, target_slot, kind in ui["links"]:
        output = nodes[source]["outputs"][slot]
        entry = nodes[target]["inputs"][target_slot]
        assert link_id in output["links"] and entry["link"] == link_id
        assert output["type"] == kind == REGISTRY.spec(nodes[source]["type"]).outputs[slot]
        assert entry["type"] == kind
    for node in nodes.values():
        if node["type"] in UI_ONLY_NODES:
            continue
        spec = REGISTRY.spec(node["type"])
        names = [entry["name"] for entry in node["inputs"]]
        assert sorted(names) == sorted(n for n, _, _ in spec.input_items())
        sockets = [n for n, s, _ in spec.input_items() if not is_widget(s[0])]
        assert names[: len(sockets)] == sockets  # sockets first, then widgets, as the frontend lays them out


@pytest.mark.parametrize("name", GENERATION)
def test_inputs_and_outputs_are_native_nodes(name):
    prompt = _api(name)
    assert (_by_class(prompt, "LoadImage") or _by_class(prompt, "LoadVideo")) and _by_class(prompt, "LoadAudio")
    (save,) = _by_class(prompt, "SaveVideo")
    (create,) = _by_class(prompt, "CreateVideo")
    assert (save["inputs"]["format"], save["inputs"]["codec"]) == ("mp4", "h264")
    sampler = next(k for k, n in prompt.items() if n["class_type"] == "MultiTalkSampler")
    assert create["inputs"] == {"images": [sampler, 0], "audio": [sampler, 1], "fps": [sampler, 2]}
    sources = {tuple(n["inputs"]["images"]) for n in _by_class(prompt, "SaveImage")}
    speakers = next(k for k, n in prompt.items() if n["class_type"] == "MultiTalkSpeakers")
    audio = next(k for k, n in prompt.items() if n["class_type"] == "MultiTalkAudioEncode")
    assert sources == {(speakers, 1), (audio, 3)}  # the speaker preview and the timeline picture


def _tracks(prompt: dict) -> int:
    (encode,) = _by_class(prompt, "MultiTalkAudioEncode")
    return sum(1 for name in encode["inputs"] if name.startswith("audio_"))


def test_each_workflow_fits_its_topic():
    single, two, three = _api(NAMES[0]), _api(NAMES[1]), _api(NAMES[2])
    assert _tracks(single) == 1 and _tracks(two) == 2 and _tracks(three) == 3
    (two_speakers,) = _by_class(two, "MultiTalkSpeakers")
    loaders = {k for k, n in two.items() if n["class_type"] == "LoadImage"}
    masks = [two_speakers["inputs"][f"mask_{k}"] for k in (1, 2)]
    assert {m[0] for m in masks} == loaders and all(m[1] == 1 for m in masks)  # painted: LoadImage's MASK
    (three_speakers,) = _by_class(three, "MultiTalkSpeakers")
    assert not any(k.startswith("mask_") for k in three_speakers["inputs"]) and three_speakers["inputs"]["boxes"] == ""
    (three_sampler,) = _by_class(three, "MultiTalkSampler")
    (three_audio,) = _by_class(three, "MultiTalkAudioEncode")
    assert three_sampler["inputs"]["routing"] == three_audio["inputs"]["routing_mode"]
    (long_sampler,) = _by_class(_api(NAMES[3]), "MultiTalkSampler")
    assert long_sampler["inputs"]["mode"] in ("multitalk", "infinitetalk") and long_sampler["inputs"]["max_frames"] == 0


def test_native_loaders_workflow_uses_comfyui_loaders():
    prompt = _api("multitalk_native_loaders")
    classes = {node["class_type"] for node in prompt.values()}
    assert {"CLIPLoader", "CLIPTextEncode", "CLIPVisionLoader", "CLIPVisionEncode", "VAELoader"} <= classes
    assert not classes & {"MultiTalkTextEncoderLoader", "MultiTalkClipVisionLoader", "MultiTalkVAELoader"}
    assert _by_class(prompt, "CLIPLoader")[0]["inputs"]["type"] == "wan"
    assert _by_class(prompt, "CLIPVisionEncode")[0]["inputs"]["crop"] == "none"
    assert {"MultiTalkModelLoader", "MultiTalkAudioEncode", "MultiTalkSpeakers", "MultiTalkSampler"} <= classes


BREAKAGES = [
    (lambda p: p["30"].update(class_type="KSamplerAdvanced"), "unknown node type 'KSamplerAdvanced'"),
    (lambda p: p["30"]["inputs"].update(cfg=7), "has no input 'cfg'"),
    (lambda p: p["30"]["inputs"].pop("vae"), "required input 'vae' is missing"),
    (lambda p: p["30"]["inputs"].update(sampler="dpmpp"), "'dpmpp', which is not one of its choices"),
    (lambda p: p["30"]["inputs"].update(steps=0), "outside its range"),
    (lambda p: p["41"]["inputs"].update(codec="vp9"), "'vp9'"),
    (lambda p: p["30"]["inputs"].update(vae=["99", 0]), "node 99, which is not in the workflow"),
    (lambda p: p["30"]["inputs"].update(vae=["11", 0]), "expects VAE but is linked to output 0 (MULTITALK_MODEL)"),
    (lambda p: p["30"]["inputs"].update(image=["1", 5]), "which has 2 outputs"),
    (lambda p: p["30"]["inputs"].update(image="portrait.png"), "must be linked"),
]


@pytest.mark.parametrize("breakage, message", BREAKAGES)
def test_validation_names_each_problem(breakage, message):
    prompt = copy.deepcopy(_api("multitalk_two_speakers"))
    breakage(prompt)
    problems = validate_prompt(prompt, REGISTRY)
    assert len(problems) == 1 and message in problems[0], problems


def test_native_table_covers_every_core_node_used():
    used = {n["class_type"] for name in NAMES for n in _api(name).values()}
    used = {class_type for class_type in used if not class_type.startswith("MultiTalk")}
    assert used <= set(NATIVE_SPECS)


def _overlap(a: list, b: list) -> bool:
    (ax, ay, aw, ah), (bx, by, bw, bh) = a, b
    return ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah


def _model_folder(spec: tuple):
    """The models folder a loader widget reads, or None for other widgets."""
    kind, options = spec[0], spec[1] if len(spec) > 1 else {}
    if str(kind).startswith("FILE:"):
        folder = str(kind).split(":", 1)[1]
        return None if folder == "input" else folder
    found = re.search(r"a file in models/(\w+)", options.get("tooltip", "")) if kind == "STRING" else None
    return found.group(1) if found else None


# Files the missing-models dialog cannot download (it takes single .safetensors files): AnyTalker's
# checkpoints are released only as .pth, its wav2vec2 is a folder. -> the repository the note must name.
NOT_DOWNLOADABLE = {"1_3B-single-v1.pth": "zzz66/AnyTalker-1.3B",
                    "wav2vec2-base-960h/model.safetensors": "facebook/wav2vec2-base-960h"}


@pytest.mark.parametrize("name", NAMES)
def test_every_model_widget_says_where_to_get_its_file(name):
    checked = 0
    for node in _ui(name)["nodes"]:
        if node["type"] in UI_ONLY_NODES:
            continue
        spec = REGISTRY.spec(node["type"])
        values = dict(zip(spec.widget_names(), [v for v in node["widgets_values"] if v != "fixed"]))
        models = {m["name"]: m for m in node["properties"].get("models", [])}
        for widget, declared, _ in spec.input_items():
            folder = _model_folder(declared)
            if folder is None or values.get(widget) in (None, "", "none"):  # "none": an optional file left out
                continue
            if values[widget] in NOT_DOWNLOADABLE:  # the read-me names where to get it instead
                notes = " ".join(n["widgets_values"][0] for n in _ui(name)["nodes"] if n["type"] == "MarkdownNote")
                assert NOT_DOWNLOADABLE[values[widget]] in notes
                checked += 1
                continue
            entry = models[values[widget]]  # ComfyUI's missing-models dialog matches widget values by name
            assert entry["directory"] == folder
            # what the dialog accepts for a download: Hugging Face (or Civitai), a .safetensors file
            assert entry["url"].startswith("https://huggingface.co/") and "/resolve/" in entry["url"]
            assert entry["url"].endswith("/" + entry["name"]) and entry["name"].endswith(".safetensors")
            checked += 1
    assert checked >= 5


def _grows(node: dict) -> float:
    return 100_000 if node["type"] in GROWS_AFTER_RUN else 0


@pytest.mark.parametrize("name", NAMES)
def test_nodes_do_not_overlap_before_or_after_a_run(name):
    ui = _ui(name)
    assert overlaps(ui) == []  # title bars included
    assert overlaps(ui, grown=_grows) == []  # a video player or previews may grow these without limit
    for group in ui["groups"]:  # groups hold their nodes and do not cover each other
        x, y, w, h = group["bounding"]
        inside = [n for n in ui["nodes"] if x <= n["pos"][0] and n["pos"][0] + n["size"][0] <= x + w
                  and y <= n["pos"][1] - TITLE_HEIGHT and n["pos"][1] + n["size"][1] <= y + h]
        assert inside, group["title"]
    frames = [g["bounding"] for g in ui["groups"]]
    assert not [(a, b) for i, a in enumerate(frames) for b in frames[i + 1:] if _overlap(a, b)]


@pytest.mark.parametrize("name", NAMES)
def test_first_screen_shows_the_read_me_and_the_first_input(name):
    ui = _ui(name)
    x0, y0, x1, y1 = visible_area(ui, 1440, 757)  # a 1440x900 window less the browser's own bars
    note = next(n for n in ui["nodes"] if n["type"] == "MarkdownNote")
    assert "Start here" in note["widgets_values"][0]
    loaders = [n for n in ui["nodes"] if n["type"] in ("LoadImage", "LoadVideo", "MultiTalkPrepareDataset")]
    first = min(loaders, key=lambda n: (n["pos"][0], n["pos"][1]))
    for node in (note, first):
        left, top = node["pos"][0], node["pos"][1] - TITLE_HEIGHT
        assert x0 <= left and left + node["size"][0] <= x1 and y0 <= top and node["pos"][1] + node["size"][1] <= y1, \
            node["title"]
