"""The client's workflow handling without a server: input rule, overrides, file checks, outputs."""
from __future__ import annotations

import json

import pytest

from comfyui_multitalk.client.run import output_files
from comfyui_multitalk.client.workflow import (
    WorkflowError,
    apply_overrides,
    assign_inputs,
    load_api_workflow,
    node_order,
    parse_value,
    plan_inputs,
)


def loaders() -> dict:
    return {
        "12": {"class_type": "LoadAudio", "inputs": {"audio": "x.wav"}, "_meta": {"title": "Right"}},
        "3": {"class_type": "LoadAudio", "inputs": {"audio": "y.wav"}, "_meta": {"title": "Left"}},
        "7:2": {"class_type": "LoadAudio", "inputs": {"audio": "z.wav"}},
        "7:10": {"class_type": "LoadAudio", "inputs": {"audio": "w.wav"}},
        "1": {"class_type": "LoadImage", "inputs": {"image": "p.png"}},
        "9": {"class_type": "KSampler", "inputs": {"seed": 1, "model": ["3", 0]}, "_meta": {"title": "Left"}},
    }


def test_node_order_is_numeric_and_by_parts():
    assert sorted(["12", "3", "7:10", "7:2", "100"], key=node_order) == ["3", "7:2", "7:10", "12", "100"]


def test_plain_files_fill_loaders_in_node_id_order():
    pairs = plan_inputs(loaders(), "audio", ["a.wav", "b.wav", "c.wav"])
    assert pairs == [("3", "a.wav"), ("7:2", "b.wav"), ("7:10", "c.wav")]  # node 12 keeps x.wav


def test_targeted_files_take_their_node_and_leave_the_rest_in_order():
    workflow = loaders()
    pairs = plan_inputs(workflow, "audio", ["12=a.wav", "b.wav", "7:2=c=d.wav"])
    assert pairs == [("12", "a.wav"), ("7:2", "c=d.wav"), ("3", "b.wav")]
    assign_inputs(workflow, "audio", {"12": "a (1).wav"})
    assert workflow["12"]["inputs"]["audio"] == "a (1).wav"
    assert plan_inputs(workflow, "audio", ["odd=name.wav"]) == [("3", "odd=name.wav")]  # not a node: a path


def test_target_errors_name_the_problem():
    with pytest.raises(WorkflowError, match="node 1 is a LoadImage, not a LoadAudio"):
        plan_inputs(loaders(), "audio", ["1=a.wav"])
    with pytest.raises(WorkflowError, match="several nodes have"):
        plan_inputs(loaders(), "audio", ["Left=a.wav"])
    with pytest.raises(WorkflowError, match=r"2 --image file\(s\) left for 1 LoadImage"):
        plan_inputs(loaders(), "image", ["a.png", "b.png"])


def test_overrides_parse_json_and_refuse_links():
    workflow = loaders()
    apply_overrides(workflow, ["9.seed=42", "Right.audio=s p a c e.wav", "9.cfg=[1, 2]", "9.flag=true", "9.name=0x"])
    assert workflow["9"]["inputs"] == {"seed": 42, "model": ["3", 0], "cfg": [1, 2], "flag": True, "name": "0x"}
    assert workflow["12"]["inputs"]["audio"] == "s p a c e.wav"
    assert parse_value("1.5") == 1.5 and parse_value("hello") == "hello"
    with pytest.raises(WorkflowError, match="wired to node 3"):
        apply_overrides(workflow, ["9.model=1"])
    with pytest.raises(WorkflowError, match="expected NODE.INPUT=VALUE"):
        apply_overrides(workflow, ["9seed=1"])
    with pytest.raises(WorkflowError, match=r"'44': no node has this id or title\. Nodes: 1 \(LoadImage\), 3"):
        apply_overrides(workflow, ["44.seed=1"])


def test_load_rejects_ui_format_and_other_json(tmp_path):
    ui = tmp_path / "ui.json"
    ui.write_text(json.dumps({"nodes": [], "links": [], "version": 0.4}))
    with pytest.raises(WorkflowError, match="UI-format workflow.*Export \\(API\\)"):
        load_api_workflow(str(ui))
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"1": {"inputs": {}}}))
    with pytest.raises(WorkflowError, match="not an API-format workflow"):
        load_api_workflow(str(other))
    with pytest.raises(WorkflowError, match="Cannot read the workflow"):
        load_api_workflow(str(tmp_path / "absent.json"))


def test_output_files_collects_every_file_kind():
    outputs = {
        "15": {"images": [{"filename": "v.mp4", "subfolder": "video", "type": "output"}], "animated": [True]},
        "16": {"audio": [{"filename": "a.flac", "subfolder": "", "type": "output"}]},
        "17": {"gifs": [{"filename": "g.webp", "subfolder": "", "type": "output", "format": "image/webp"}]},
        "18": {"images": [{"filename": "p.png", "subfolder": "", "type": "temp"}], "text": ["not a file"]},
    }
    names = [item["filename"] for _, item in output_files(outputs)]
    assert names == ["v.mp4", "a.flac", "g.webp", "p.png"]
    assert [item["filename"] for _, item in output_files(outputs, include_temp=False)] == ["v.mp4", "a.flac", "g.webp"]
