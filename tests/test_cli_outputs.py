"""The command line keeps what the user gave: outputs are checked before any node runs (never
over an input, only containers it writes), existing ones are numbered or replaced with
--overwrite, unknown nodes fail validation, and every failure is a short message and an exit
code (the traceback only with --debug)."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from comfyui_multitalk.cli import main as cli_main
from comfyui_multitalk.cli.demo import DemoSettings, demo_assignments
from comfyui_multitalk.cli.demo_media import write_demo_media
from comfyui_multitalk.cli.main import main
from comfyui_multitalk.cli.tiny_weights import write_tiny_weights
from comfyui_multitalk.cli.workflow_files import shipped_api_workflow
from comfyui_multitalk.models.video_io import read_video_frames
from comfyui_multitalk.nodes.sampler_nodes import MultiTalkSampler


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Tiny weights, the demo's drawn scene and voices, and copies of two shipped workflows."""
    root = tmp_path_factory.mktemp("cli_outputs")
    weights = write_tiny_weights(str(root / "models"))
    media = write_demo_media(str(root / "input"), seconds=0.8)
    for name in ("multitalk_two_speakers", "multitalk_train_audio_adapter"):
        shutil.copy(shipped_api_workflow(name), root / f"{name}.json")
    return root, weights, media


@pytest.fixture
def sampler_calls(monkeypatch):
    calls = []
    monkeypatch.setattr(MultiTalkSampler, "sample", lambda self, **kwargs: calls.append(kwargs))
    return calls


def _given_files(root: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def _two_speakers(setup, tmp_path, *extra: str) -> list[str]:
    root, weights, media = setup
    sets = [arg for assignment in demo_assignments(weights, media, DemoSettings()) for arg in ("--set", assignment)]
    return ["run", str(root / "multitalk_two_speakers.json"), *sets, "--output-dir", str(tmp_path / "out"), *extra]


def _refused(capsys, argv: list[str]) -> str:
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert "[1/" not in captured.out and "saved" not in captured.out  # no node ran, nothing was written
    assert "Traceback" not in captured.err and captured.err.startswith("error: ")
    return captured.err


def test_an_output_over_an_input_is_refused_before_any_node_runs(setup, tmp_path, capsys, sampler_calls):
    root, weights, media = setup
    before = _given_files(root)
    (tmp_path / "linked.mp4").symlink_to(media.voices[1])
    targets = {media.speaker_masks[0]: media.speaker_masks[0],  # the reference image
               media.voices[0]: media.voices[0], weights.vae: weights.vae,
               str(root / "multitalk_two_speakers.json"): str(root / "multitalk_two_speakers.json"),
               str(tmp_path / "linked.mp4"): media.voices[1]}
    for output, read in targets.items():
        err = _refused(capsys, _two_speakers(setup, tmp_path, "--output", output))
        assert f"error: The output '{output}' is the file '{read}'" in err and "Choose another output name" in err
        assert err.count("\n") == 1  # one line
    err = _refused(capsys, _two_speakers(setup, tmp_path, "--set", f"Sampler.stream_to={tmp_path / 'linked.mp4'}"))
    assert f"The output '{tmp_path / 'linked.mp4'}' is the file '{media.voices[1]}' (the same file under" in err
    assert sampler_calls == [] and not (tmp_path / "out").exists()
    assert _given_files(root) == before


def test_stand_ins_record_what_they_read_and_output_widgets_are_real(tmp_path):
    from comfyui_multitalk.cli.native_nodes import LoadImage, RunContext
    from comfyui_multitalk.cli.output_plan import OUTPUT_WIDGETS
    from comfyui_multitalk.cli.registry import NodeRegistry
    from comfyui_multitalk.models.errors import OutputPathError
    from comfyui_multitalk.models.output_files import check_output, run_scope

    _, picture = _still_video_workflow(tmp_path)
    original = picture.read_bytes()
    with run_scope():
        LoadImage(RunContext(input_dir=str(tmp_path))).load_image("picture.png")
        with pytest.raises(OutputPathError, match="picture.png"):
            check_output(str(picture), overwrite=True, kind="image")
    assert picture.read_bytes() == original
    registry = NodeRegistry()
    for class_type, name in OUTPUT_WIDGETS:  # the table names real widget inputs
        assert registry.spec(class_type).input_spec(name) is not None


@pytest.mark.parametrize("name", ["out.webm", "voice.wav", "anim.gif"])
def test_unwritable_containers_fail_before_any_node_runs(setup, tmp_path, capsys, sampler_calls, name):
    before = _given_files(setup[0])
    err = _refused(capsys, _two_speakers(setup, tmp_path, "--output", str(tmp_path / name)))
    suffix = os.path.splitext(name)[1]
    assert f"Cannot write the video '{tmp_path / name}': '{suffix}' is not a container" in err and "Use .mp4" in err
    assert sampler_calls == [] and sorted(os.listdir(tmp_path)) == []
    assert _given_files(setup[0]) == before


def test_a_workflow_with_a_node_the_command_line_cannot_run_fails_validation(setup, tmp_path, capsys,
                                                                             sampler_calls):
    root = setup[0]
    prompt = json.loads((root / "multitalk_two_speakers.json").read_text())
    prompt["41"] = {"class_type": "VHS_VideoCombine", "_meta": {"title": "Video Combine"},
                    "inputs": {"images": ["30", 0], "frame_rate": 25, "format": "video/h264-mp4"}}
    only_vhs = {k: v for k, v in prompt.items() if k not in ("42", "43")}  # no output node the CLI knows
    for number, graph in enumerate((prompt, only_vhs)):
        workflow = tmp_path / f"vhs{number}.json"
        workflow.write_text(json.dumps(graph))
        args = _two_speakers(setup, tmp_path)
        args[1] = str(workflow)
        err = _refused(capsys, args)
        assert "node 41 'Video Combine' (VHS_VideoCombine): unknown node type 'VHS_VideoCombine'" in err
        assert "CreateVideo + SaveVideo" in err and "run the workflow in ComfyUI" in err
    assert sampler_calls == [] and not (tmp_path / "out").exists()


def test_training_never_overwrites_the_model_it_starts_from(setup, tmp_path, capsys):
    root, weights, _ = setup
    before = _given_files(root)
    for model_file in (weights.audio_weights, weights.dit):
        stem = model_file[: -len(".safetensors")]
        err = _refused(capsys, ["run", str(root / "multitalk_train_audio_adapter.json"),
                                "--set", f"MultiTalk model.model={weights.dit}",
                                "--set", f"MultiTalk model.audio_weights={weights.audio_weights}",
                                "--set", f"Prepare dataset.clips_folder={tmp_path}",
                                "--set", f"Prepare dataset.cache_folder={tmp_path / 'cache'}",
                                "--set", f"Train audio adapter.output_name={stem}",
                                "--output-dir", str(tmp_path / "out")])
        assert f"The output '{model_file}' is the file '{model_file}', which this run reads" in err
    assert _given_files(root) == before and not (tmp_path / "cache").exists()


def _still_video_workflow(tmp_path: Path) -> tuple[Path, Path]:
    """A core-nodes-only workflow: a picture -> a 1-frame video + the picture saved beside it."""
    picture = tmp_path / "picture.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 48, 3), dtype=np.uint8)).save(picture)
    prompt = {"1": {"class_type": "LoadImage", "inputs": {"image": str(picture)}},
              "2": {"class_type": "CreateVideo", "inputs": {"images": ["1", 0], "fps": 25.0}},
              "3": {"class_type": "SaveVideo", "inputs": {"video": ["2", 0], "filename_prefix": "clip",
                                                          "format": "mp4", "codec": "h264"}},
              "4": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "still"}}}
    workflow = tmp_path / "still.json"
    workflow.write_text(json.dumps(prompt))
    return workflow, picture


def test_existing_outputs_are_numbered_and_replaced_only_with_overwrite(tmp_path, capsys):
    workflow, picture = _still_video_workflow(tmp_path)
    given = {picture: picture.read_bytes(), workflow: workflow.read_bytes()}
    (tmp_path / "talk.mp4").write_bytes(b"an earlier video")
    (tmp_path / "talk_still.png").write_bytes(b"an earlier picture")
    assert main(["run", str(workflow), "--output", str(tmp_path / "talk.mp4")]) == 0
    out = capsys.readouterr().out
    assert f"'{tmp_path / 'talk.mp4'}' exists: writing '{tmp_path / 'talk_00001_.mp4'}' instead" in out
    assert (tmp_path / "talk.mp4").read_bytes() == b"an earlier video"
    assert (tmp_path / "talk_still.png").read_bytes() == b"an earlier picture"
    assert read_video_frames(str(tmp_path / "talk_00001_.mp4"))[:2] == (1, 25.0)
    assert (tmp_path / "talk_00001_still.png").is_file()  # the pictures follow the video's number

    assert main(["run", str(workflow), "--output", str(tmp_path / "talk.mp4"), "--overwrite"]) == 0
    assert read_video_frames(str(tmp_path / "talk.mp4"))[:2] == (1, 25.0)
    assert (tmp_path / "talk_still.png").read_bytes() != b"an earlier picture"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary files left
    assert all(path.read_bytes() == data for path, data in given.items())

    assert main(["run", str(workflow), "--output-dir", str(tmp_path / "out")]) == 0  # default naming: numbered
    assert main(["run", str(workflow), "--output-dir", str(tmp_path / "out"), "--overwrite"]) == 0
    assert sorted(os.listdir(tmp_path / "out")) == ["clip_00001_.mp4", "clip_00002_.mp4", "still_00001_.png",
                                                    "still_00002_.png"]


def test_error_messages_exit_codes_and_debug(tmp_path, capsys, monkeypatch):
    bad = ["run", str(tmp_path / "missing.json")]
    assert main(bad) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: Cannot read the workflow") and err.count("\n") == 1 and "Traceback" not in err
    for argv in (["--debug", *bad], [*bad, "--debug"]):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.startswith("Traceback") and err.splitlines()[-1].startswith("error: Cannot read the workflow")

    def raising(exc):
        def run_workflow_file(*args, **kwargs):
            raise exc
        return run_workflow_file

    from comfyui_multitalk.cli import run as run_module

    cases = [(OSError(28, "No space left on device", "/videos/talk.mp4"), 1,
              "error: No space left on device '/videos/talk.mp4'. Check the path, the free disk space and the "
              "permissions, then run again."),
             (TypeError("unsupported operand"), 1, "error: unexpected TypeError: unsupported operand\nThis is a bug "
              "in ComfyUI-MultiTalk: run again with --debug and report the traceback at " + cli_main.ISSUES_URL),
             (KeyboardInterrupt(), 130, "Interrupted.")]
    for exc, code, message in cases:
        monkeypatch.setattr(run_module, "run_workflow_file", raising(exc))
        assert main(["run", "w.json"]) == code
        err = capsys.readouterr().err
        assert err == message + "\n"
        assert main(["--debug", "run", "w.json"]) == code
        err = capsys.readouterr().err
        assert err.startswith("Traceback") and err.endswith(message + "\n")
