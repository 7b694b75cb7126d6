"""The shipped workflows: current with their descriptions, valid against the node definitions,
UI and API forms saying the same thing, and each one built as its topic requires."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from comfyui_multitalk.cli.native_specs import NATIVE_SPECS, UI_ONLY_NODES, is_widget
from comfyui_multitalk.cli.registry import NodeRegistry
from comfyui_multitalk.cli.validate import validate_prompt
from comfyui_multitalk.cli.workflow_files import WORKFLOWS_DIR, rendered_files, stale_files

NAMES = ["multitalk_single_speaker", "multitalk_two_speakers", "multitalk_three_speakers", "multitalk_long_video",
         "multitalk_native_loaders", "multitalk_train_audio_adapter"]
DUBBING = ["multitalk_dubbing", "multitalk_dubbing_two_speakers", "multitalk_dubbing_masked",
           "multitalk_prompt_timeline"]
ANYTALKER = ["anytalker_two_speakers", "anytalker_three_speakers"]
GENERATION = NAMES[:-1] + DUBBING + ANYTALKER  # every workflow but the training one makes a video
NAMES = NAMES + DUBBING + ANYTALKER
REGISTRY = NodeRegistry()


def _load(name: str) -> dict:
    return json.loads((Path(WORKFLOWS_DIR) / name).read_text(encoding="utf-8"))


def _api(name: str) -> dict:
    return _load(f"{name}_api.json")


def _ui(name: str) -> dict:
    return _load(f"{name}.json")


def _by_class(prompt: dict, class_type: str) -> list[dict]:
    return [node for node in prompt.values() if node["class_type"] == class_type]


def test_committed_files_are_what_the_descriptions_build():
    assert sorted(rendered_files()) == sorted(f"{n}{s}.json" for n in NAMES for s in ("", "_api"))
    assert stale_files() == [], "run: python -m comfyui_multitalk workflows"


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


@pytest.mark.parametrize("name", NAMES)
def test_nodes_do_not_overlap_and_groups_hold_their_nodes(name):
    ui = _ui(name)
    boxes = {n["id"]: [*n["pos"], *n["size"]] for n in ui["nodes"]}
    clashes = [(a, b) for a in boxes for b in boxes if a < b and _overlap(boxes[a], boxes[b])]
    assert clashes == []
    for group in ui["groups"]:
        x, y, w, h = group["bounding"]
        inside = [i for i, (bx, by, bw, bh) in boxes.items()
                  if x <= bx and bx + bw <= x + w and y <= by and by + bh <= y + h]
        assert inside, group["title"]
