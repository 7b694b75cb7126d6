"""API-format workflows: load, override widget values, and point loaders at uploaded files.

Input rule: files given with --image go to the LoadImage nodes' `image` input and files
given with --audio to the LoadAudio nodes' `audio` input, in ascending node id (numeric
where the ids are numbers, as ComfyUI numbers them). `NODE=FILE` targets one node by id or
title instead. Nodes left without a file keep the name already in the workflow.
"""
from __future__ import annotations

import json
from typing import Any

# Loader class -> the input that holds the uploaded file's name.
FILE_INPUTS = {"image": ("LoadImage", "image"), "audio": ("LoadAudio", "audio")}


class WorkflowError(ValueError):
    """The workflow file or a command-line override does not fit the workflow."""


def load_api_workflow(path: str) -> dict:
    """Read an API-format workflow ({node_id: {"class_type", "inputs"}})."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, json.JSONDecodeError) as exc:
        raise WorkflowError(f"Cannot read the workflow {path}: {exc}") from exc
    if isinstance(data, dict) and "nodes" in data and "links" in data:
        raise WorkflowError(f"{path} is a UI-format workflow. In ComfyUI use Workflow > Export (API) "
                            "and pass that file (or use the *_api.json files in workflows/api/).")
    if not isinstance(data, dict) or not data or not all(
            isinstance(node, dict) and "class_type" in node for node in data.values()):
        raise WorkflowError(f"{path} is not an API-format workflow ({{id: {{class_type, inputs}}}}).")
    return data


def node_order(node_id: str) -> tuple:
    """Sort key: '2' < '10', and subgraph ids like '12:3' by their parts."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in str(node_id).split(":"))


def find_node(workflow: dict, ref: str) -> str:
    """A node id from an id or a node title (`_meta.title`)."""
    if ref in workflow:
        return ref
    titled = [nid for nid, node in workflow.items() if node.get("_meta", {}).get("title") == ref]
    if len(titled) == 1:
        return titled[0]
    known = ", ".join(f"{nid} ({node['class_type']})" for nid, node in sorted(workflow.items(),
                                                                            key=lambda kv: node_order(kv[0])))
    what = "several nodes have" if titled else "no node has"
    raise WorkflowError(f"'{ref}': {what} this id or title. Nodes: {known}")


def parse_value(text: str) -> Any:
    """JSON where it parses (numbers, true/false, lists), else the text itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def apply_overrides(workflow: dict, overrides: list[str]) -> None:
    """Apply `NODE.INPUT=VALUE` settings (NODE: id or title) in place."""
    for item in overrides:
        target, sep, value = item.partition("=")
        ref, dot, name = target.rpartition(".")
        if not sep or not dot or not ref or not name:
            raise WorkflowError(f"--set {item!r}: expected NODE.INPUT=VALUE, e.g. 3.seed=42")
        node = workflow[find_node(workflow, ref)]
        inputs = node.setdefault("inputs", {})
        if isinstance(inputs.get(name), list) and len(inputs[name]) == 2 and str(inputs[name][0]) in workflow:
            raise WorkflowError(f"--set {item!r}: {ref}.{name} is wired to node {inputs[name][0]}, "
                                "not a value; change the link in ComfyUI instead.")
        inputs[name] = parse_value(value)


def loader_nodes(workflow: dict, kind: str) -> list[str]:
    """Ids of the loader nodes that take `kind` ("image" or "audio") files, in input order."""
    class_type, _ = FILE_INPUTS[kind]
    return sorted((nid for nid, node in workflow.items() if node["class_type"] == class_type), key=node_order)


def split_target(workflow: dict, item: str) -> tuple[str | None, str]:
    """'NODE=FILE' -> (node id, file); a plain FILE -> (None, FILE)."""
    ref, sep, path = item.partition("=")
    if sep and ref and (ref in workflow or any(n.get("_meta", {}).get("title") == ref for n in workflow.values())):
        return find_node(workflow, ref), path
    return None, item


def plan_inputs(workflow: dict, kind: str, items: list[str]) -> list[tuple[str, str]]:
    """(node id, local file) pairs for --image or --audio items, by the input rule above."""
    class_type, _ = FILE_INPUTS[kind]
    free = loader_nodes(workflow, kind)
    pairs, plain = [], []
    for item in items:
        node_id, path = split_target(workflow, item)
        if node_id is None:
            plain.append(path)
            continue
        if workflow[node_id]["class_type"] != class_type:
            raise WorkflowError(f"--{kind} {item!r}: node {node_id} is a {workflow[node_id]['class_type']}, "
                                f"not a {class_type}.")
        pairs.append((node_id, path))
        free.remove(node_id)
    if len(plain) > len(free):
        raise WorkflowError(f"{len(plain)} --{kind} file(s) left for {len(free)} {class_type} node(s) "
                            f"({', '.join(free) or 'none'}); the workflow needs a {class_type} node per file.")
    return pairs + list(zip(free, plain))


def assign_inputs(workflow: dict, kind: str, names: dict[str, str]) -> None:
    """Write uploaded file names ({node id: name}) into the loaders' file input, in place."""
    _, input_name = FILE_INPUTS[kind]
    for node_id, name in names.items():
        workflow[node_id].setdefault("inputs", {})[input_name] = name
