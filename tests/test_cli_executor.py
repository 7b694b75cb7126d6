"""The command line's executor: order, caching, --set, errors and interruption."""
from __future__ import annotations

import json

import pytest

from comfyui_multitalk.cli.executor import Executor, NodeFailed
from comfyui_multitalk.cli.main import main
from comfyui_multitalk.cli.overrides import apply_overrides, find_node, split_assignment
from comfyui_multitalk.cli.registry import NodeRegistry
from comfyui_multitalk.cli.validate import load_prompt
from comfyui_multitalk.cli.values import WorkflowError, coerce
from comfyui_multitalk.cli.workflow_files import shipped_api_workflow
from comfyui_multitalk.models.errors import AudioInputError

CALLS: list[str] = []


class Number:
    FUNCTION, RETURN_TYPES = "make", ("INT",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 1, "min": 0, "max": 100})}}

    def make(self, value):
        CALLS.append(f"number {value}")
        return (value,)


class Add:
    FUNCTION, RETURN_TYPES = "add", ("INT", "STRING")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"a": ("INT",), "b": ("INT",)}, "optional": {"scale": ("INT", {"default": 1})}}

    def add(self, a, b, scale=1):
        CALLS.append(f"add {a} {b}")
        return {"ui": {"text": [str(a + b)]}, "result": ((a + b) * scale, "sum")}


class Show:
    FUNCTION, RETURN_TYPES, OUTPUT_NODE = "show", (), True
    SEEN: list = []

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT",)}}

    def show(self, value):
        CALLS.append(f"show {value}")
        Show.SEEN.append(value)
        if value < 0:
            raise AudioInputError(f"track 2 is {value} s long")
        return {"ui": {"shown": [value]}}


def _registry():
    return NodeRegistry(classes={"Number": Number, "Add": Add, "Show": Show})


def _graph():
    return {
        "1": {"class_type": "Number", "inputs": {"value": 2}, "_meta": {"title": "two"}},
        "2": {"class_type": "Number", "inputs": {"value": 3}, "_meta": {"title": "three"}},
        "3": {"class_type": "Add", "inputs": {"a": ["1", 0], "b": ["2", 0]}},
        "4": {"class_type": "Show", "inputs": {"value": ["3", 0]}, "_meta": {"title": "big"}},
        "5": {"class_type": "Show", "inputs": {"value": ["1", 0]}, "_meta": {"title": "small"}},
        "6": {"class_type": "Number", "inputs": {"value": 9}},  # nobody needs it
    }


@pytest.fixture(autouse=True)
def _clear():
    CALLS.clear()
    Show.SEEN.clear()


def test_runs_what_outputs_need_once_in_dependency_order_cheap_outputs_first():
    ui = Executor(_graph(), _registry(), log=lambda line: None).run()
    assert CALLS == ["number 2", "show 2", "number 3", "add 2 3", "show 5"]
    assert ui == {"4": {"shown": [5]}, "5": {"shown": [2]}, "3": {"text": ["5"]}}


def test_widget_values_are_coerced_to_the_declared_type():
    graph = _graph()
    graph["3"]["inputs"]["scale"] = 2.0  # a JSON float for an INT input
    Executor(graph, _registry(), log=lambda line: None).run()
    assert Show.SEEN == [2, 10] and isinstance(Show.SEEN[1], int)


def test_errors_before_running_anything():
    graph = _graph()
    del graph["3"]["inputs"]["b"]
    graph["1"]["inputs"]["value"] = 500
    with pytest.raises(WorkflowError) as caught:
        Executor(graph, _registry(), log=lambda line: None).run()
    assert "required input 'b' is missing" in str(caught.value) and "500, outside its range 0..100" in str(caught.value)
    assert CALLS == []


def test_cycles_and_missing_outputs_are_named():
    graph = _graph()
    graph["1"]["inputs"]["value"] = ["3", 0]
    with pytest.raises(WorkflowError, match=r"cycle: 4 -> 3 -> 1 -> 3"):
        Executor(graph, _registry(), log=lambda line: None).order()
    with pytest.raises(WorkflowError, match="no output node"):
        Executor({"1": {"class_type": "Number", "inputs": {"value": 1}}}, _registry()).order()


def test_node_errors_name_the_node():
    graph = _graph()
    graph["3"]["inputs"]["scale"] = -1
    with pytest.raises(NodeFailed, match=r"node 4 'big' \(Show\): track 2 is -5 s long"):
        Executor(graph, _registry(), log=lambda line: None).run()


def test_stop_request_interrupts_between_nodes():
    executor = Executor(_graph(), _registry(), log=lambda line: None)
    executor.stop_requested = True
    with pytest.raises(KeyboardInterrupt):
        executor.run()
    assert CALLS == []


def test_assignment_parsing_and_node_lookup():
    assert split_assignment("Speaker 1 voice.audio=a.b.wav") == ("Speaker 1 voice", "audio", "a.b.wav")
    assert split_assignment("v1.2 model.dtype=fp16") == ("v1.2 model", "dtype", "fp16")
    with pytest.raises(WorkflowError, match="NODE.INPUT=VALUE"):
        split_assignment("steps=4")
    graph = _graph()
    assert find_node(graph, "3") == "3" and find_node(graph, "BIG") == "4" and find_node(graph, "Add") == "3"
    with pytest.raises(WorkflowError, match=r"several nodes \(1, 2, 6\)"):
        find_node(graph, "Number")
    with pytest.raises(WorkflowError, match="no node 'Sampler'.*node 4 'big' \\(Show\\)"):
        find_node(graph, "Sampler")


def test_set_on_the_shipped_workflow_coerces_values():
    prompt = load_prompt(json.load(open(shipped_api_workflow("multitalk_two_speakers"))), "two speakers")
    registry = NodeRegistry()
    changed = apply_overrides(prompt, registry, ["Sampler.steps=3", "30.apg=yes", "MultiTalkSampler.shift=7",
                                                 "Speaker 2 voice.audio=/tmp/b.wav", "Audio.fps=25"])
    sampler = changed["30"]["inputs"]
    assert (sampler["steps"], sampler["apg"], sampler["shift"]) == (3, True, 7.0)
    assert isinstance(sampler["shift"], float)
    assert changed["3"]["inputs"]["audio"] == "/tmp/b.wav" and prompt["30"]["inputs"]["steps"] == 40  # a copy
    for bad, message in [("Sampler.sampler=dpm", "not one of its choices: euler, unipc"),
                         ("Sampler.steps=2.5", "whole number"), ("Sampler.apg=maybe", "true or false"),
                         ("Sampler.vae=x", "VAE input: it takes a link"), ("Sampler.cfg=7", "has no input 'cfg'"),
                         ("LoadAudio.audio=a.wav", "several nodes")]:
        with pytest.raises(WorkflowError, match=message):
            apply_overrides(prompt, registry, [bad])


def test_coerce_range_and_choice():
    assert coerce("0x", (["0x", "1x"],), "w") == "0x"
    assert coerce("12", ("INT", {"min": 0}), "w") == 12 and coerce("1e2", ("INT",), "w") == 100
    with pytest.raises(WorkflowError, match="w is -1.0, outside its range >= 0"):
        coerce("-1", ("FLOAT", {"min": 0}), "w")


def test_native_loaders_workflow_is_refused_with_the_reason():
    prompt = load_prompt(json.load(open(shipped_api_workflow("multitalk_native_loaders"))), "native")
    executor = Executor(prompt, NodeRegistry(), log=lambda line: None)
    with pytest.raises(WorkflowError) as caught:
        executor.check(executor.order())
    text = str(caught.value)
    assert "node 12 'Load CLIP (umt5)' (CLIPLoader) runs in ComfyUI only" in text
    assert "CLIPVisionLoader) runs in ComfyUI only" in text and "VAELoader) runs in ComfyUI only" in text


def test_command_line_errors_exit_nonzero(tmp_path, capsys):
    ui = tmp_path / "ui.json"
    ui.write_text(json.dumps({"nodes": [], "links": []}))
    assert main(["run", str(ui)]) == 1
    assert "UI-format workflow" in capsys.readouterr().err
    assert main(["run", str(tmp_path / "missing.json")]) == 1
    assert "Cannot read the workflow" in capsys.readouterr().err
    assert main(["run", shipped_api_workflow("multitalk_two_speakers"), "--set", "Sampler.steps=0"]) == 1
    assert "input 'steps' is 0, outside its range 1..200" in capsys.readouterr().err
    assert main(["workflows", "--check"]) == 0


class Interrupting(Show):
    def show(self, value):
        import os
        import signal

        from comfyui_multitalk.nodes import comfy_bridge

        os.kill(os.getpid(), signal.SIGINT)  # as if the user pressed Ctrl-C while this node runs
        try:
            comfy_bridge.check_interrupt()  # what a sampling step does
        except KeyboardInterrupt as exc:
            CALLS.append(f"step check: {exc}")
        return super().show(value)


def test_ctrl_c_stops_the_running_step_and_the_run():
    from comfyui_multitalk.cli.run import _interrupt_on_ctrl_c

    registry = NodeRegistry(classes={"Number": Number, "Add": Add, "Show": Interrupting})
    executor, lines = Executor(_graph(), registry, log=lambda line: None), []
    with pytest.raises(KeyboardInterrupt, match="between nodes"):
        with _interrupt_on_ctrl_c(executor, lines.append):
            executor.run()
    assert CALLS == ["number 2", "step check: Generation interrupted.", "show 2"]
    assert lines == ["Stopping at the next step (Ctrl-C again to stop at once)..."]


def test_models_dir_finds_the_names_of_the_shipped_workflow(tmp_path):
    from comfyui_multitalk.cli.model_folders import MODEL_FOLDERS, resolve_model_folders

    registry = NodeRegistry()
    for class_type, name in MODEL_FOLDERS:  # the table names real loader inputs
        assert registry.spec(class_type).input_spec(name) is not None
    prompt = load_prompt(json.load(open(shipped_api_workflow("multitalk_two_speakers"))), "two speakers")
    (tmp_path / "vae").mkdir()
    (tmp_path / "diffusion_models").mkdir()
    (tmp_path / "vae" / "wan_2.1_vae.safetensors").write_bytes(b"x")
    (tmp_path / "diffusion_models" / "multitalk.safetensors").write_bytes(b"x")  # the loader's second folder
    resolved = resolve_model_folders(prompt, str(tmp_path))
    assert resolved["14"]["inputs"]["vae"] == str(tmp_path / "vae" / "wan_2.1_vae.safetensors")
    assert resolved["11"]["inputs"]["audio_weights"] == str(tmp_path / "diffusion_models" / "multitalk.safetensors")
    assert resolved["11"]["inputs"]["model"] == "wan2.1_i2v_480p_14B_fp16.safetensors"  # not there: left as named
    assert prompt["14"]["inputs"]["vae"] == "wan_2.1_vae.safetensors"  # a copy


def test_python_dash_m_entry_point():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "comfyui_multitalk", "workflows", "--check"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    done = subprocess.run([sys.executable, "-m", "comfyui_multitalk", "run"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and "workflow" in done.stderr  # argparse names the missing argument
