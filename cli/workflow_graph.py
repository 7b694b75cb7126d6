"""One Python description of a workflow -> ComfyUI's UI format (what the browser opens) and
API format (what /prompt and the command line run).

UI format as the current frontend saves it: node inputs list the sockets first, then one
entry per widget; `widgets_values` holds every widget in declaration order (a linked widget
keeps its value), the frontend's own extras (an INT named seed is followed by its
"control_after_generate" value; upload buttons and the audio player come last); links are
[id, source node, source slot, target node, target slot, type].
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Union

from .model_sources import models_for_widgets
from .native_specs import FILE_TYPE, is_widget
from .registry import NodeRegistry, NodeSpec, input_options
from .workflow_layout import GROUP_ROOM_AFTER_RUN, GROWS_AFTER_RUN, node_size, stack_columns, view

SEED_INPUTS = ("seed", "noise_seed")  # the frontend adds "control_after_generate" after these


@dataclass(frozen=True)
class Out:
    """A link source: output `output` (name or index) of node `node`."""

    node: int
    output: Union[str, int] = 0


@dataclass
class Node:
    id: int
    class_type: str
    title: str
    column: int
    y: int  # order in the column (the layout stacks a column's nodes by it)
    inputs: dict[str, Any] = field(default_factory=dict)  # values, or Out(...) links
    group: str = ""


@dataclass
class Note:
    text: str
    column: int
    y: int  # order in the column, like Node.y (0: above every node)
    width: int = 420
    height: int = 0  # 0: as tall as the text needs

    def size(self) -> list[int]:
        """ComfyUI renders note markdown small: about 50 characters a line, 13 canvas pixels a line."""
        lines = sum(max(1, -(-len(paragraph) // 50)) for paragraph in self.text.split("\n"))
        return [self.width, self.height or 40 + 13 * lines]


@dataclass
class Workflow:
    name: str  # file stem: <name>.json (UI) and api/<name>_api.json (API)
    nodes: list[Node]
    notes: list[Note] = field(default_factory=list)

    def node(self, node_id: int) -> Node:
        return next(n for n in self.nodes if n.id == node_id)


def widget_default(spec: tuple, where: str) -> Any:
    options = input_options(spec)
    if "default" in options:
        return options["default"]
    if isinstance(spec[0], (list, tuple)) and spec[0]:
        return spec[0][0]
    raise ValueError(f"{where} has no default: give it a value in the workflow description.")


def _slot(spec: NodeSpec, output: Union[str, int], where: str) -> int:
    if isinstance(output, int):
        return output
    if output not in spec.output_names:
        raise ValueError(f"{where}: no output '{output}' (outputs: {spec.output_names}).")
    return spec.output_names.index(output)


def _resolved_inputs(workflow: Workflow, node: Node, registry: NodeRegistry) -> dict[str, Any]:
    """Every widget input (given or default) and every link as (source id, slot), in declaration order."""
    spec = registry.spec(node.class_type)
    unknown = set(node.inputs) - {name for name, _, _ in spec.input_items()}
    if unknown:
        raise ValueError(f"{workflow.name} node {node.id}: {node.class_type} has no inputs {sorted(unknown)}.")
    values = {}
    for name, declared, _ in spec.input_items():
        given = node.inputs.get(name)
        where = f"{workflow.name} node {node.id} input {name}"
        if isinstance(given, Out):
            source = registry.spec(workflow.node(given.node).class_type)
            values[name] = (str(given.node), _slot(source, given.output, where))
        elif is_widget(declared[0]):
            values[name] = widget_default(declared, where) if given is None else given
    return values


def to_api(workflow: Workflow, registry: NodeRegistry) -> dict:
    prompt = {}
    for node in sorted(workflow.nodes, key=lambda n: n.id):
        inputs = {name: list(value) if isinstance(value, tuple) else value
                  for name, value in _resolved_inputs(workflow, node, registry).items()}
        prompt[str(node.id)] = {"inputs": inputs, "class_type": node.class_type, "_meta": {"title": node.title}}
    return prompt


def _ui_inputs(spec: NodeSpec) -> list[tuple[str, tuple, bool]]:
    items = list(spec.input_items())
    return [i for i in items if not is_widget(i[1][0])] + [i for i in items if is_widget(i[1][0])]


def _ui_type(kind) -> str:
    return "COMBO" if isinstance(kind, (list, tuple)) or str(kind).startswith(FILE_TYPE) else str(kind)


def _widget_values(spec: NodeSpec, node: Node, resolved: dict) -> list:
    values = []
    for name, declared, _ in spec.input_items():
        if not is_widget(declared[0]):
            continue
        value = resolved[name]
        if isinstance(node.inputs.get(name), Out):  # a linked widget keeps a value in the UI
            value = widget_default(declared, f"node {node.id} input {name}")
        values.append(value)
        if declared[0] == "INT" and name in SEED_INPUTS:
            values.append("fixed")
    return values + list(spec.ui_extra_widgets)


def _order(workflow: Workflow) -> dict[int, int]:
    """Execution rank of each node (sources first), as the frontend stores in `order`."""
    ranks: dict[int, int] = {}

    def rank(node: Node) -> int:
        if node.id not in ranks:
            sources = [workflow.node(v.node) for v in node.inputs.values() if isinstance(v, Out)]
            ranks[node.id] = 1 + max((rank(s) for s in sources), default=-1)
        return ranks[node.id]

    by_rank = sorted(workflow.nodes, key=lambda n: (rank(n), n.id))
    return {n.id: k for k, n in enumerate(by_rank)}


def _positions(workflow: Workflow, registry: NodeRegistry) -> dict:
    """Layout of nodes and notes (keys: node ids, and ("note", k))."""
    boxes = [{"key": n.id, "column": n.column, "order": (n.y, n.id), "group": n.group,
              "size": node_size(registry.spec(n.class_type), _ui_inputs(registry.spec(n.class_type)), n.class_type),
              "grows": n.class_type in GROWS_AFTER_RUN} for n in workflow.nodes]
    boxes += [{"key": ("note", k), "column": note.column, "order": (note.y, -1), "group": "", "size": note.size()}
              for k, note in enumerate(workflow.notes)]
    positions = stack_columns(boxes)
    return {b["key"]: (positions[b["key"]], b["size"]) for b in boxes}


def to_ui(workflow: Workflow, registry: NodeRegistry) -> dict:
    order, links, ui_nodes, layout = _order(workflow), [], [], _positions(workflow, registry)
    outputs_of: dict[tuple[int, int], list[int]] = {}
    for node in sorted(workflow.nodes, key=lambda n: n.id):
        spec = registry.spec(node.class_type)
        resolved, ui_inputs, entries = _resolved_inputs(workflow, node, registry), _ui_inputs(spec), []
        for slot, (name, declared, required) in enumerate(ui_inputs):
            entry: dict[str, Any] = {"localized_name": name, "name": name, "type": _ui_type(declared[0])}
            if not required:
                entry["shape"] = 7
            if is_widget(declared[0]):
                entry["widget"] = {"name": name}
            entry["link"] = None
            if isinstance(node.inputs.get(name), Out):
                source, source_slot = int(resolved[name][0]), resolved[name][1]
                link_type = registry.spec(workflow.node(source).class_type).outputs[source_slot]
                links.append([len(links) + 1, source, source_slot, node.id, slot, link_type])
                entry["link"] = len(links)
                outputs_of.setdefault((source, source_slot), []).append(len(links))
            entries.append(entry)
        values = _widget_values(spec, node, resolved)
        properties = {"Node name for S&R": node.class_type}
        if models_for_widgets(values):  # ComfyUI's missing-models dialog reads these
            properties["models"] = models_for_widgets(values)
        ui_nodes.append({
            "id": node.id, "type": node.class_type, "pos": layout[node.id][0], "size": layout[node.id][1],
            "flags": {}, "order": order[node.id], "mode": 0, "inputs": entries, "outputs": [], "title": node.title,
            "properties": properties, "widgets_values": values})
    for ui_node in ui_nodes:
        spec = registry.spec(ui_node["type"])
        ui_node["outputs"] = [{"localized_name": name, "name": name, "type": kind,
                               "links": outputs_of.get((ui_node["id"], slot), []), "slot_index": slot}
                              for slot, (name, kind) in enumerate(zip(spec.output_names, spec.outputs))]
    notes = _note_nodes(workflow, layout, start_id=max(n.id for n in workflow.nodes) + 1, start_order=len(order))
    return {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"comfyui-multitalk/workflows/{workflow.name}")),
            "revision": 0, "last_node_id": max(n["id"] for n in ui_nodes + notes), "last_link_id": len(links),
            "nodes": ui_nodes + notes, "links": links, "groups": _groups(workflow, ui_nodes), "config": {},
            "extra": {"ds": view()}, "version": 0.4}


def _note_nodes(workflow: Workflow, layout: dict, start_id: int, start_order: int) -> list[dict]:
    return [{"id": start_id + k, "type": "MarkdownNote", "pos": layout[("note", k)][0],
             "size": layout[("note", k)][1], "flags": {}, "order": start_order + k, "mode": 0, "inputs": [],
             "outputs": [], "title": "Read me" if k == 0 else "Note", "properties": {},
             "widgets_values": [note.text], "color": "#432", "bgcolor": "#653"}
            for k, note in enumerate(workflow.notes)]


GROUP_COLORS = ("#3f789e", "#8A8", "#b58b2a", "#a1309b", "#88A", "#b06634")


def _groups(workflow: Workflow, ui_nodes: list[dict]) -> list[dict]:
    groups, names = [], list(dict.fromkeys(n.group for n in workflow.nodes if n.group))
    for k, name in enumerate(names):
        members = [u for u in ui_nodes if workflow.node(u["id"]).group == name]
        left = min(u["pos"][0] for u in members) - 20
        top = min(u["pos"][1] for u in members) - 60
        right = max(u["pos"][0] + u["size"][0] for u in members) + 20
        bottom = max(u["pos"][1] + u["size"][1] + (GROUP_ROOM_AFTER_RUN if u["type"] in GROWS_AFTER_RUN else 0)
                     for u in members) + 20
        groups.append({"id": k + 1, "title": name, "bounding": [left, top, right - left, bottom - top],
                       "color": GROUP_COLORS[k % len(GROUP_COLORS)], "font_size": 24, "flags": {}})
    return groups
