"""Checks of an API-format workflow against the node definitions, before anything runs."""
from __future__ import annotations

from typing import Any

from .native_specs import is_widget
from .registry import NodeRegistry, NodeSpec
from .values import WorkflowError, coerce, is_link


def node_label(node_id: str, node: dict) -> str:
    title = (node.get("_meta") or {}).get("title")
    name = f" '{title}'" if title else ""
    return f"node {node_id}{name} ({node.get('class_type', '?')})"


def load_prompt(data: Any, source: str) -> dict:
    """The API-format prompt in `data` (also accepts {"prompt": {...}} as sent to /prompt)."""
    if isinstance(data, dict) and isinstance(data.get("prompt"), dict):
        data = data["prompt"]
    if isinstance(data, dict) and "nodes" in data and "links" in data:
        raise WorkflowError(f"{source} is a UI-format workflow (what the browser opens). The command line runs the "
                            "API format: use the matching workflows/api/*_api.json, or in ComfyUI choose Workflow > Export (API).")
    if not isinstance(data, dict) or not data or not all(isinstance(n, dict) and "class_type" in n
                                                         for n in data.values()):
        raise WorkflowError(f"{source} is not an API-format workflow ({{\"id\": {{\"class_type\": ..., "
                            "\"inputs\": {...}}}}).")
    return {str(k): v for k, v in data.items()}


def validate_prompt(prompt: dict, registry: NodeRegistry) -> list[str]:
    """Every problem found, as sentences naming the node, the input and the value."""
    problems: list[str] = []
    for node_id, node in prompt.items():
        class_type = node.get("class_type")
        if class_type not in registry:
            problems.append(f"{node_label(node_id, node)}: unknown node type '{class_type}' (neither a MultiTalk "
                            "node nor a ComfyUI core node these workflows use).")
            continue
        problems += _node_problems(node_id, node, registry.spec(class_type), prompt, registry)
    return problems


def _node_problems(node_id: str, node: dict, spec: NodeSpec, prompt: dict, registry: NodeRegistry) -> list[str]:
    label, inputs = node_label(node_id, node), node.get("inputs", {})
    problems = [f"{label}: has no input '{name}' (its inputs: {', '.join(n for n, _, _ in spec.input_items())})."
                for name in inputs if spec.input_spec(name) is None]
    for name, declared, required in spec.input_items():
        if name not in inputs:
            if required:
                problems.append(f"{label}: required input '{name}' is missing.")
            continue
        value = inputs[name]
        if is_link(value):
            problems += _link_problems(label, name, declared[0], value, prompt, registry)
        elif not is_widget(declared[0]):
            problems.append(f"{label}: input '{name}' ({declared[0]}) must be linked to another node's output.")
        else:
            try:
                coerce(value, declared, f"{label} input '{name}'")
            except WorkflowError as exc:
                problems.append(str(exc))
    return problems


def _link_problems(label: str, name: str, kind, link: list, prompt: dict, registry: NodeRegistry) -> list[str]:
    source_id, slot = link
    source = prompt.get(source_id)
    if source is None:
        return [f"{label}: input '{name}' is linked to node {source_id}, which is not in the workflow."]
    if source.get("class_type") not in registry:
        return []  # reported on the source node itself
    outputs = registry.spec(source["class_type"]).outputs
    if not 0 <= slot < len(outputs):
        return [f"{label}: input '{name}' is linked to output {slot} of {node_label(source_id, source)}, "
                f"which has {len(outputs)} outputs."]
    wanted = "COMBO" if isinstance(kind, (list, tuple)) else str(kind)
    if outputs[slot] != wanted and "*" not in (outputs[slot], wanted):
        return [f"{label}: input '{name}' expects {wanted} but is linked to output {slot} ({outputs[slot]}) of "
                f"{node_label(source_id, source)}."]
    return []
