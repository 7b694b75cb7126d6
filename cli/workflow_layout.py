"""Where the nodes of a shipped UI workflow go: columns of stacked nodes that never overlap,
before or after a run, with the read-me note and the inputs on the first screen.

Each node's size is what the frontend draws for it (sockets and widgets, the image under a
LoadImage, the pictures the pack's web extension adds) plus the room a run's pictures take on
nodes that show a fixed-size preview (SaveImage). Nodes whose size after a run depends on the
result (the video player of SaveVideo, the sampler's previews and notes) go last in their column,
so they grow into free canvas. Columns are as wide as their widest node.
"""
from __future__ import annotations

from typing import Callable, Union

from .native_specs import is_widget
from .registry import NodeSpec, input_options

TITLE_HEIGHT = 30  # the frontend draws the title bar above a node's pos
NODE_GAP = 30  # between one node's bottom and the next node's title bar
GROUP_GAP = 110  # ... when the next node starts another group: its frame and title fit between
COLUMN_GAP = 80
LEFT, TOP = 40, 90  # the first title bar sits below its group's title
NODE_WIDTH = 380
# Height of the pictures the pack's web extension adds on creation (web/js/multitalk_sizes.js;
# a test keeps both in step).
WEB_WIDGET_HEIGHTS = {"MultiTalkSpeakers": 340, "MultiTalkAudioEncode": 130}
WIDE_NODES = {"MultiTalkSpeakers": 440, "MultiTalkAudioEncode": 440}
# Room for the picture a run shows on the node (ComfyUI's image preview is at least 220 high).
AFTER_RUN_HEIGHT = {"SaveImage": 240, "PreviewImage": 240}
GROWS_AFTER_RUN = {"SaveVideo", "PreviewVideo", "MultiTalkSampler", "PreviewAny"}
GROUP_ROOM_AFTER_RUN = 360  # a group frame reaches this far below such a node (e.g. a 16:9 video player)
# The first screen: ComfyUI's canvas at this zoom, scrolled so the first column starts at the left.
VIEW_SCALE = 0.75
VIEW_OFFSET = (10, 20)
UPLOAD_PREVIEW_HEIGHT = 240  # the picture under a LoadImage
AUDIO_PLAYER_HEIGHT = 60  # the player and upload button of a LoadAudio


def node_size(spec: NodeSpec, ui_inputs: list, class_type: str) -> list[int]:
    """[width, height] of a node's body (without its title bar) as the frontend lays it out."""
    sockets = sum(1 for _, declared, _ in ui_inputs if not is_widget(declared[0]))
    widgets = [input_options(declared).get("multiline") for _, declared, _ in ui_inputs if is_widget(declared[0])]
    height = 40 + 22 * max(sockets, len(spec.outputs)) + sum(110 if tall else 26 for tall in widgets)
    if input_options(spec.input_spec("image") or ("",)).get("image_upload"):
        height += UPLOAD_PREVIEW_HEIGHT
    if input_options(spec.input_spec("audio") or ("",)).get("audio_upload"):
        height += AUDIO_PLAYER_HEIGHT
    height += WEB_WIDGET_HEIGHTS.get(class_type, 0) + AFTER_RUN_HEIGHT.get(class_type, 0)
    return [WIDE_NODES.get(class_type, NODE_WIDTH), height]


Box = dict  # {"key": node id or note key, "column": int, "order": (y hint, ...), "size": [w, h], "group": str}


def stack_columns(boxes: list[Box]) -> dict[Union[int, str], list[int]]:
    """pos [x, y] of every box: each column stacked top to bottom in order, nodes that grow after a
    run last; a gap for the group frame where the group changes."""
    columns = sorted({b["column"] for b in boxes})
    positions, x = {}, LEFT
    for column in columns:
        members = sorted((b for b in boxes if b["column"] == column),
                         key=lambda b: (b.get("grows", False), b["order"]))
        y, group = TOP, None
        for box in members:
            if group is not None and box["group"] != group:
                y += GROUP_GAP - NODE_GAP
            positions[box["key"]] = [x, y]
            y += box["size"][1] + TITLE_HEIGHT + NODE_GAP
            group = box["group"]
        x += max(b["size"][0] for b in members) + COLUMN_GAP
    return positions


def overlaps(ui: dict, grown: Callable[[dict], float] = lambda node: 0) -> list[tuple[int, int]]:
    """Pairs of node ids whose drawn boxes (title bar included) intersect; `grown(node)` adds height."""
    boxes = [(n["id"], n["pos"][0], n["pos"][1] - TITLE_HEIGHT, n["pos"][0] + n["size"][0],
              n["pos"][1] + n["size"][1] + grown(n)) for n in ui["nodes"]]
    return [(a[0], b[0]) for i, a in enumerate(boxes) for b in boxes[i + 1:]
            if a[1] < b[3] and b[1] < a[3] and a[2] < b[4] and b[2] < a[4]]


def view(scale: float = VIEW_SCALE) -> dict:
    """extra.ds of the workflow: the zoom and scroll the canvas opens with."""
    return {"scale": scale, "offset": list(VIEW_OFFSET)}


def visible_area(ui: dict, width: int, height: int, origin: tuple = (40, 40), tabs: int = 40) -> tuple:
    """(x0, y0, x1, y1) of the canvas a width x height browser page shows at the saved view: the
    canvas starts right of ComfyUI's tool bar and below its menu bar (origin), and the workflow
    tabs cover its top."""
    scale, (ox, oy) = ui["extra"]["ds"]["scale"], ui["extra"]["ds"]["offset"]
    return (-ox, tabs / scale - oy, (width - origin[0]) / scale - ox, (height - origin[1]) / scale - oy)
