"""Before any node runs: record every file the workflow reads, then check every file it will
write (refusing one that is an input, a container the pack cannot write, or a folder it
cannot write to), so a bad --output fails in a second instead of after the whole run."""
from __future__ import annotations

import os
from typing import Callable

from ..models.output_files import check_output, note_input
from .native_nodes import STAND_INS, RunContext
from .registry import NodeRegistry
from .values import coerce

# Widgets that name files or folders the run writes (or writes before it reads them): never
# recorded as inputs. (class_type, input) -> what they hold.
OUTPUT_WIDGETS = {
    ("MultiTalkSampler", "stream_to"): "streamed video",
    ("MultiTalkTrainAudioAdapter", "output_name"): "trained adapter",
    ("MultiTalkTrainAudioAdapter", "cache_folder"): "training cache (prepared earlier in the run)",
    ("MultiTalkPrepareDataset", "cache_folder"): "training cache",
    ("SaveVideo", "filename_prefix"): "output name",
    ("SaveImage", "filename_prefix"): "output name",
}
_PLANNERS = {cls.CLASS_TYPE: cls.planned for cls in STAND_INS if hasattr(cls, "planned")}


def note_workflow_inputs(prompt: dict, order: list[str], registry: NodeRegistry, context: RunContext) -> None:
    """Record each widget value of the nodes that run that names an existing file or folder (as a
    path or in the input folder): images, audio, model files, clip folders."""
    for node_id in order:
        node = prompt[node_id]
        for name, value in node.get("inputs", {}).items():
            if (node["class_type"], name) in OUTPUT_WIDGETS or not isinstance(value, str) or not value.strip():
                continue
            path = context.locate_input(value)
            if path is not None:
                note_input(path)


def plan_outputs(prompt: dict, order: list[str], registry: NodeRegistry, context: RunContext,
                 log: Callable[[str], None]) -> None:
    """Check every output path of the nodes in `order` (OutputPathError before anything runs when one
    cannot be written) and settle --output: numbered when it exists and overwriting is off."""
    note_workflow_inputs(prompt, order, registry, context)
    classes = {prompt[node_id]["class_type"] for node_id in order}
    if context.output_video:
        given = context.output_video
        path = os.path.abspath(check_output(given, kind="video" if "SaveVideo" in classes else None))
        if path != os.path.abspath(os.path.expanduser(given)):
            log(f"'{given}' exists: writing '{path}' instead (--overwrite replaces it).")
        context.output_video = path
    for node_id in order:
        node = prompt[node_id]
        inputs = node.get("inputs", {})
        for path, kind in _PLANNERS.get(node["class_type"], lambda c, i: [])(context, inputs):
            check_output(path, kind=kind)  # refusals only: the node numbers its file when it writes
        stream_to = inputs.get("stream_to") if node["class_type"] == "MultiTalkSampler" else None
        if isinstance(stream_to, str) and stream_to.strip():
            check_output(stream_to.strip(), kind="video")  # refusals only: the sampler numbers it, as in ComfyUI
        if node["class_type"] == "MultiTalkTrainAudioAdapter" and isinstance(inputs.get("output_name"), str):
            resume = _widget_value(registry, node, "resume", True)
            _check_training_output(inputs["output_name"], bool(resume))


def _widget_value(registry: NodeRegistry, node: dict, name: str, default):
    """A widget's value converted to its declared type (the default when it is not given)."""
    value = node.get("inputs", {}).get(name, default)
    return coerce(value, registry.spec(node["class_type"]).input_spec(name), f"input '{name}'")


def _check_training_output(output_name: str, resume: bool) -> None:
    """The adapter, its resume state and its step files: none may be a file the run reads."""
    from ..models.training.checkpoints import adapter_paths, check_adapter_outputs
    from ..nodes.comfy_bridge import model_output_path

    output = model_output_path("model_patches", output_name)
    check_adapter_outputs(output, resuming=resume and os.path.isfile(adapter_paths(output)[1]))
