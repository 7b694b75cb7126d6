"""Runs an API-format workflow outside ComfyUI: only what the output nodes need, each node once,
in dependency order, dropping each result as soon as no pending node needs it."""
from __future__ import annotations

import time
from typing import Any, Callable

from ..models.errors import MultiTalkError
from .registry import NodeRegistry, NodeSpec
from .validate import node_label, validate_prompt
from .values import WorkflowError, coerce, is_link

RUNNABLE_HINT = ("The command line runs the MultiTalk nodes and the ComfyUI core nodes LoadImage, LoadImageMask, "
                 "LoadAudio, CreateVideo, SaveVideo, SaveImage and PreviewImage. Replace the others (e.g. a "
                 "VHS_VideoCombine by CreateVideo + SaveVideo, native loaders by the MultiTalk loaders as in "
                 "multitalk_two_speakers_api.json), or run the workflow in ComfyUI.")


class NodeFailed(MultiTalkError):
    """A node stopped with a bad-input error; the message names the node."""


class Executor:
    def __init__(self, prompt: dict, registry: NodeRegistry, log: Callable[[str], None] = print):
        self.prompt, self.registry, self.log = prompt, registry, log
        self.stop_requested = False  # set from a signal handler: stop before the next node

    def output_nodes(self) -> list[str]:
        outputs = [node_id for node_id, node in self.prompt.items()
                   if node.get("class_type") in self.registry and self.registry.spec(node["class_type"]).output_node]
        if not outputs:
            raise WorkflowError("The workflow has no output node (SaveVideo, SaveImage or PreviewImage): nothing to "
                                "run.")
        # Cheap outputs first: the speaker preview and timeline appear before the long sampling.
        return sorted(outputs, key=lambda node_id: (len(self._ancestors(node_id)), _id_key(node_id)))

    def order(self) -> list[str]:
        """Node ids the outputs need, each after its inputs."""
        ordered: list[str] = []
        for output in self.output_nodes():
            for node_id in self._dependency_order(output):
                if node_id not in ordered:
                    ordered.append(node_id)
        return ordered

    def unrunnable(self) -> list[str]:
        """Every node of the workflow the command line cannot run (unknown, or ComfyUI only), wherever it
        is: an output node it does not know would otherwise be dropped with all it depends on."""
        problems = []
        for node_id in sorted(self.prompt, key=_id_key):
            node = self.prompt[node_id]
            if node.get("class_type") not in self.registry:
                problems.append(f"{node_label(node_id, node)}: unknown node type '{node.get('class_type')}' (neither "
                                "a MultiTalk node nor a ComfyUI core node the command line has a stand-in for).")
            elif self.registry.spec(node["class_type"]).factory is None:
                problems.append(f"{node_label(node_id, node)} runs in ComfyUI only.")
        return problems

    def check(self, order: list[str]) -> None:
        """WorkflowError listing every node that cannot run and every bad input of the nodes in `order`."""
        unrunnable = self.unrunnable()
        runnable = {node_id: self.prompt[node_id] for node_id in order if self.prompt[node_id]["class_type"]
                    in self.registry}
        problems = unrunnable + validate_prompt(runnable, self.registry)
        if problems:
            raise WorkflowError("The workflow cannot run:\n  - " + "\n  - ".join(problems)
                                + ("\n" + RUNNABLE_HINT if unrunnable else ""))

    def validate(self) -> list[str]:
        """The node ids to run, in order, once everything checks out (before anything runs)."""
        if self.unrunnable():  # before looking for output nodes: an unknown one must be named, not skipped
            self.check([])
        order = self.order()
        self.check(order)
        return order

    def run(self) -> dict[str, Any]:
        """Run everything the outputs need; returns {output node id: its "ui" dict}."""
        order = self.validate()
        consumers = {node_id: sum(1 for other in order for value in self._links(other) if value[0] == node_id)
                     for node_id in order}
        results: dict[str, tuple] = {}
        ui: dict[str, Any] = {}
        for step, node_id in enumerate(order, start=1):
            if self.stop_requested:
                raise KeyboardInterrupt("Interrupted between nodes.")
            label = node_label(node_id, self.prompt[node_id])
            self.log(f"[{step}/{len(order)}] {label}")
            start = time.perf_counter()
            outputs, node_ui = self._run_node(node_id, results, label)
            results[node_id] = outputs
            if node_ui is not None:
                ui[node_id] = node_ui
            for source, _ in self._links(node_id):
                consumers[source] -= 1
                if consumers[source] == 0:
                    results.pop(source, None)
            self.log(f"[{step}/{len(order)}] done in {time.perf_counter() - start:.1f} s")
        return ui

    def _run_node(self, node_id: str, results: dict, label: str) -> tuple[tuple, Any]:
        node = self.prompt[node_id]
        spec = self.registry.spec(node["class_type"])
        kwargs = self._arguments(node, spec, results, label)
        instance = spec.factory()
        try:
            returned = getattr(instance, type(instance).FUNCTION)(**kwargs)
        except MultiTalkError as exc:
            raise NodeFailed(f"{label}: {exc}") from exc
        node_ui = None
        if isinstance(returned, dict):
            node_ui, returned = returned.get("ui"), returned.get("result", ())
        returned = tuple(returned or ())
        if len(returned) < len(spec.outputs):
            raise WorkflowError(f"{label} returned {len(returned)} values for its {len(spec.outputs)} outputs.")
        return returned, node_ui

    @staticmethod
    def _arguments(node: dict, spec: NodeSpec, results: dict, label: str) -> dict:
        kwargs = {}
        for name, value in node.get("inputs", {}).items():
            declared = spec.input_spec(name)
            if is_link(value):
                kwargs[name] = results[value[0]][value[1]]
            else:
                kwargs[name] = coerce(value, declared, f"{label} input '{name}'")
        return kwargs

    def _links(self, node_id: str) -> list:
        return [value for value in self.prompt[node_id].get("inputs", {}).values() if is_link(value)]

    def _ancestors(self, node_id: str) -> set[str]:
        return set(self._dependency_order(node_id)) - {node_id}

    def _dependency_order(self, root: str) -> list[str]:
        """Post-order walk from `root` over links; a cycle or a dangling link is an error."""
        ordered: list[str] = []
        state: dict[str, str] = {}

        def visit(node_id: str, path: list[str]) -> None:
            if state.get(node_id) == "done":
                return
            if state.get(node_id) == "open":
                raise WorkflowError(f"The workflow has a cycle: {' -> '.join(path + [node_id])}.")
            if node_id not in self.prompt:
                raise WorkflowError(f"Node {path[-1]} is linked to node {node_id}, which is not in the workflow.")
            state[node_id] = "open"
            for source, _ in self._links(node_id):
                visit(source, path + [node_id])
            state[node_id] = "done"
            ordered.append(node_id)

        visit(root, [])
        return ordered


def _id_key(node_id: str) -> tuple:
    return (0, int(node_id), "") if node_id.isdigit() else (1, 0, node_id)
