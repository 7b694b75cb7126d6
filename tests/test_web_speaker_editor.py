"""The speaker editor in Node (tests/web_harness.py): it asks the server route for the layout of
what feeds the Speakers node, and drawing, reordering and resetting speakers write the node's own
inputs (the boxes text, the mask links) in reference-image pixels, as the Python side reads them."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))  # the Node harness shared by the web tests
from web_harness import node_binary, run_driver  # noqa: E402

pytestmark = pytest.mark.skipif(node_binary() is None, reason="Node.js is not installed")

GRAPH = """
const { api, fetched, responses } = await import("./scripts/api.js");
const m = await import("./extensions/pack/js/multitalk_speakers.js");
const links = new Map();
let nextLink = 1;
const widget = (name, value) => ({ name, value, callback(v) { this.written = v; } });
const graph = { links, nodes: {}, getNodeById(id) { return this.nodes[id]; } };
function makeNode(id, type, inputs, widgets) {
  const node = { id, type, comfyClass: type, graph, widgets, size: [440, 900],
    inputs: inputs.map((name) => ({ name, link: null })),
    connect(slot, target, targetSlot) { const link = nextLink++;
      links.set(link, { origin_id: this.id, origin_slot: slot }); target.inputs[targetSlot].link = link; },
    disconnectInput(slot) { this.inputs[slot].link = null; },
    addDOMWidget(name, type, element, options) { const w = { name, element, options }; widgets.push(w); return w; } };
  graph.nodes[id] = node;
  return node;
}
const picture = makeNode(1, "LoadImage", [], [widget("image", "ref.png")]);
const painted = makeNode(5, "LoadImage", [], [widget("image", "sub/painted.png [input]")]);
const audio = makeNode(20, "MultiTalkAudioEncode", ["wav2vec", "audio_1", "audio_2", "audio_3"],
  [widget("listeners", 0)]);
const speakers = makeNode(21, "MultiTalkSpeakers", ["image", "audio", "mask_1", "mask_2", "mask_3", "mask_4"],
  [widget("num_speakers", 0), widget("resolution", "240p"), widget("boxes", ""), widget("overlap", "nearest_center")]);
picture.connect(0, speakers, 0);
painted.connect(1, speakers, 2);
audio.connect(0, speakers, 1);
makeNode(2, "LoadAudio", [], []).connect(0, audio, 1);
makeNode(3, "LoadAudio", [], []).connect(0, audio, 2);
const boxes = () => speakers.widgets.find((w) => w.name === "boxes").value;
const linkOf = (name) => { const input = speakers.inputs.find((i) => i.name === name);
  return input.link === null ? null : links.get(input.link).origin_id; };
"""


@pytest.fixture(scope="module")
def layout(tmp_path_factory) -> dict:
    """What the route answers for that graph: speaker 1 painted on the left, speaker 2 automatic."""
    from comfyui_multitalk.nodes.speaker_routes import speakers_layout

    folder = tmp_path_factory.mktemp("pictures")
    rgb = np.random.default_rng(1).integers(0, 255, (200, 320, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(folder / "ref.png")
    alpha = np.full((200, 320, 1), 255, np.uint8)
    alpha[10:190, 10:150] = 0
    Image.fromarray(np.concatenate([rgb, alpha], axis=2), "RGBA").save(folder / "painted.png")
    files = {"ref.png": folder / "ref.png", "sub/painted.png [input]": folder / "painted.png"}
    answer = speakers_layout({"image": "ref.png", "masks": ["sub/painted.png [input]", None, None, None],
                              "boxes": "", "num_speakers": 0, "resolution": "240p", "tracks": 2},
                             resolve=lambda name: str(files[name]))
    assert answer["ok"] and [s["source"] for s in answer["speakers"]] == ["mask", "strip"]
    return answer


def test_editor_requests_the_layout_of_what_feeds_the_node(tmp_path, layout):
    driver = GRAPH + f"""
    responses.push({json.dumps(layout)});
    const editor = m.attachEditor(speakers);
    await editor.refresh();
    const editorWidget = speakers.widgets.at(-1);
    console.log(JSON.stringify({{ route: fetched[0][0], body: fetched[0][1], picture: editor.picture.src,
      widget: [editorWidget.name, editorWidget.options.serialize, editorWidget.options.getMinHeight()],
      chips: editor.toolbar.children.map((b) => b.textContent), status: editor.status.textContent,
      view: m.viewParams("sub/x y.png [output]") }}));
    """
    report = run_driver(tmp_path, driver)
    assert report["route"] == "/multitalk/speakers/layout"
    assert report["body"] == {"image": "ref.png", "masks": ["sub/painted.png [input]", None, None, None],
                              "boxes": "", "num_speakers": 0, "resolution": "240p", "overlap": "nearest_center",
                              "tracks": 2}
    assert report["picture"] == "/api/view?filename=ref.png&subfolder=&type=input&channel=rgb"
    assert report["widget"] == ["multitalk_speaker_editor", False, 340]
    assert report["chips"] == ["1", "2", "◀", "▶", "Auto", "⟳"]
    assert report["status"].startswith("1: mask 10, 10, 141, 181 · 2: strip")
    assert report["view"] == {"filename": "x y.png", "subfolder": "sub", "type": "output"}


def test_drawing_reordering_and_resetting_write_the_nodes_inputs(tmp_path, layout):
    from comfyui_multitalk.models.speakers.regions import parse_boxes

    driver = GRAPH + f"""
    const boxesLib = await import("./extensions/pack/js/lib/speaker_boxes.js");
    responses.push({json.dumps(layout)});
    const editor = m.attachEditor(speakers);
    await editor.refresh();
    const out = {{}};
    const at = (x, y) => ({{ clientX: x, clientY: y, pointerId: 1, stopPropagation() {{}} }});
    editor.canvas.listeners.pointerdown(at(20, 40));  // speaker 1 is painted: not editable here
    out.painted = editor.error;
    editor.selected = 1;                            // speaker 2: drag out a new box
    editor.canvas.listeners.pointerdown(at(30, 60));
    editor.canvas.listeners.pointermove(at(200, 260));
    editor.canvas.listeners.pointerup(at(200, 260));
    const view = boxesLib.fitView(editor.layout, 400, 300);
    out.bucket = boxesLib.spanBox(boxesLib.fromView(view, [30, 60]), boxesLib.fromView(view, [200, 260]), editor.layout);
    out.drawn = boxes();
    editor.canvas.listeners.pointerdown(at(100, 150)); // inside it: move it 40 view pixels right
    editor.canvas.listeners.pointermove(at(140, 150));
    editor.canvas.listeners.pointerup(at(140, 150));
    out.moved = boxes();
    editor.reorder(1, 0);                            // the drawn region now drives track 1
    out.reordered = {{ boxes: boxes(), mask_1: linkOf("mask_1"), mask_2: linkOf("mask_2"), selected: editor.selected }};
    editor.setAuto(0);
    out.auto = boxes();
    console.log(JSON.stringify(out));
    """
    report = run_driver(tmp_path, driver)
    assert "Speaker 1 is painted (mask_1)" in report["painted"]
    from comfyui_multitalk.models.speakers.summary import to_reference_box
    from types import SimpleNamespace

    geometry = SimpleNamespace(source_size=(200, 320), height=layout["height"], width=layout["width"])
    drawn = parse_boxes(report["drawn"])
    assert drawn[0] is None and list(drawn[1]) == to_reference_box(report["bucket"], geometry)
    moved = parse_boxes(report["moved"])[1]
    scale = layout["resized_width"] / 320 * min(400 / layout["width"], 300 / layout["height"])
    assert moved.x - drawn[1].x == pytest.approx(40 / scale, abs=1) and moved.y == drawn[1].y
    # reordered: the box moves to line 1, the painted mask from mask_1 to mask_2 (its Load Image is node 5)
    assert report["reordered"] == {"boxes": report["moved"].splitlines()[1], "mask_1": None, "mask_2": 5,
                                   "selected": 0}
    assert report["auto"] == ""
