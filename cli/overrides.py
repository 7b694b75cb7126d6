"""`--set NODE.INPUT=VALUE`: change a widget value of an API-format workflow.

NODE is a node id, a node title (`_meta.title`, case-insensitive) or a class_type that occurs
once; VALUE is converted to the type the input declares (numbers, true/false, choices).
"""
from __future__ import annotations

import copy

from .registry import NodeRegistry
from .validate import node_label
from .values import WorkflowError, coerce


def split_assignment(text: str) -> tuple[str, str, str]:
    """'Sampler.steps=4' -> ('Sampler', 'steps', '4'); titles may contain dots (the last one splits)."""
    target, sep, value = text.partition("=")
    node, dot, name = target.rpartition(".")
    if not sep or not dot or not node.strip() or not name.strip():
        raise WorkflowError(f"--set '{text}' is not NODE.INPUT=VALUE (e.g. --set MultiTalkSampler.steps=20 or "
                            "--set 12.seed=7).")
    return node.strip(), name.strip(), value


def find_node(prompt: dict, ref: str) -> str:
    """The id of the node `ref` names: an id, a unique title, or a unique class_type."""
    if ref in prompt:
        return ref
    for key in ("title", "class_type"):
        matches = [node_id for node_id, node in prompt.items() if _field(node, key).lower() == ref.lower()]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise WorkflowError(f"--set: '{ref}' matches several nodes ({', '.join(matches)}): use the node id.")
    known = "; ".join(node_label(node_id, node) for node_id, node in prompt.items())
    raise WorkflowError(f"--set: no node '{ref}' in the workflow. Nodes: {known}.")


def _field(node: dict, key: str) -> str:
    return str((node.get("_meta") or {}).get("title", "") if key == "title" else node.get(key, ""))


def apply_overrides(prompt: dict, registry: NodeRegistry, assignments: list[str]) -> dict:
    """A copy of `prompt` with every assignment applied (a link given a value stops being a link)."""
    prompt = copy.deepcopy(prompt)
    for text in assignments:
        ref, name, raw = split_assignment(text)
        node_id = find_node(prompt, ref)
        node = prompt[node_id]
        if node.get("class_type") not in registry:
            raise WorkflowError(f"--set '{text}': {node_label(node_id, node)} is not a node type the command line "
                                "knows.")
        spec = registry.spec(node["class_type"]).input_spec(name)
        if spec is None:
            names = ", ".join(n for n, _, _ in registry.spec(node["class_type"]).input_items())
            raise WorkflowError(f"--set '{text}': {node_label(node_id, node)} has no input '{name}' (its inputs: "
                                f"{names}).")
        node.setdefault("inputs", {})[name] = coerce(raw, spec, f"--set '{text}': input '{name}'")
    return prompt
