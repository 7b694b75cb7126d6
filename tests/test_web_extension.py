"""The frontend extension, run in Node against stand-ins of ComfyUI's modules (same relative
paths as ComfyUI serves them, see tests/web_harness.py): notes on MultiTalk nodes without
shrinking them, the progress text, the timeline's play cursor, and the speaker editor's
geometry, edits and requests, each checked against the Python side it mirrors."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # the Node harness shared by the web tests
from web_harness import REPO, node_binary, run_driver  # noqa: E402

pytestmark = pytest.mark.skipif(node_binary() is None, reason="Node.js is not installed")

NOTES_DRIVER = """
import { registered } from "./scripts/app.js";
await import("./extensions/pack/js/multitalk_notes.js");
const results = {};
for (const name of ["MultiTalkSampler", "KSampler"]) {
  function NodeType() {}
  NodeType.prototype.onExecuted = function () { this.seen = true; };
  await registered[0].beforeRegisterNodeDef(NodeType, { name });
  const node = new NodeType();
  node.size = [500, 400];
  const sizes = [];
  node.computeSize = () => [300, node.widgets?.length ? 620 : 200];
  node.setSize = (size) => { node.size = size; sizes.push(size); };
  node.onExecuted({ multitalk_notes: ["first note", "second note"] });
  node.onExecuted({ multitalk_notes: ["updated"] });
  node.onExecuted({});
  const hosted = new NodeType();
  hosted.multitalkShowNotes = (notes) => { hosted.hostedNotes = notes; };
  hosted.onExecuted({ multitalk_notes: ["inside the picture"] });
  results[name] = { seen: !!node.seen, widgets: (node.widgets || []).map((w) => [w.name, w.value, w.serialize,
    w.options?.serialize]), sizes, hosted: hosted.hostedNotes ?? null, hostedWidgets: hosted.widgets ?? [] };
}
console.log(JSON.stringify({ name: registered[0].name, results }));
"""


def test_notes_show_on_multitalk_nodes_only_and_never_shrink_them(tmp_path):
    report = run_driver(tmp_path, NOTES_DRIVER)
    assert report["name"] == "MultiTalk.NodeNotes"
    sampler, other = report["results"]["MultiTalkSampler"], report["results"]["KSampler"]
    # one box, refreshed, then emptied by a run without notes; never saved, never sent in the prompt
    assert sampler["widgets"] == [["notes", "", False, False]]
    assert sampler["sizes"][0] == [500, 620] and all(size == [500, 620] for size in sampler["sizes"])
    assert sampler["hosted"] == ["inside the picture"] and sampler["hostedWidgets"] == []
    assert other == {"seen": True, "widgets": [], "sizes": [], "hosted": None, "hostedWidgets": []}


def test_every_module_loads_under_any_pack_folder_name(tmp_path):
    modules = sorted(p.relative_to(REPO / "web").as_posix() for p in (REPO / "web").rglob("*.js"))
    driver = "const names = [];\n" + "".join(
        f'await import("./extensions/a pack-name.v2/{m}"); names.push("{m}");\n' for m in modules)
    driver += 'const { registered } = await import("./scripts/app.js");\n'
    driver += "console.log(JSON.stringify({ names, extensions: registered.map((e) => e.name) }));"
    report = run_driver(tmp_path, driver, pack_folder="a pack-name.v2")
    assert report["names"] == modules
    assert sorted(report["extensions"]) == ["MultiTalk.NodeNotes", "MultiTalk.Progress", "MultiTalk.SpeakerEditor",
                                            "MultiTalk.Timeline"]
    for path in (REPO / "web").rglob("*.js"):  # ComfyUI is reached through lib/comfy.js only
        imports = re.findall(r'from\s+"([^"]+)"', path.read_text())
        assert all(t.startswith("./") or path.name == "comfy.js" for t in imports), path


def test_sizes_and_colours_match_the_python_side(tmp_path):
    from comfyui_multitalk.cli.workflow_layout import WEB_WIDGET_HEIGHTS
    from comfyui_multitalk.models.audio.palette import SPEAKER_COLORS

    driver = """
    const { WEB_WIDGET_HEIGHTS } = await import("./extensions/pack/js/lib/sizes.js");
    const { SPEAKER_COLORS } = await import("./extensions/pack/js/lib/palette.js");
    console.log(JSON.stringify({ WEB_WIDGET_HEIGHTS, SPEAKER_COLORS }));
    """
    report = run_driver(tmp_path, driver)
    assert report["WEB_WIDGET_HEIGHTS"] == WEB_WIDGET_HEIGHTS
    assert [tuple(c) for c in report["SPEAKER_COLORS"]] == list(SPEAKER_COLORS)


def test_progress_text_lands_on_the_running_node(tmp_path):
    driver = """
    const { registered, app } = await import("./scripts/app.js");
    const { api } = await import("./scripts/api.js");
    await import("./extensions/pack/js/multitalk_progress.js");
    const ext = registered[0];
    function NodeType() {}
    await ext.beforeRegisterNodeDef(NodeType, { name: "MultiTalkSampler" });
    const node = new NodeType();
    node.size = [400, 600];
    app.graph = { _nodes: [node], getNodeById: (id) => (id === 30 ? node : null) };
    ext.setup();
    api.dispatch("multitalk.progress", { node: "5:30", text: "window 2/3, step 4/40", value: 50, max: 200 });
    const drawn = [];
    node.onDrawForeground({ save() {}, restore() {}, fillText: (...a) => drawn.push(a) });
    api.dispatch("execution_start", {});
    console.log(JSON.stringify({ drawn, after: node.multitalkProgress }));
    """
    report = run_driver(tmp_path, driver)
    assert report["drawn"] == [["window 2/3, step 4/40 · 25%", 390, -10]]  # in the title bar
    assert report["after"] == ""


def test_timeline_cursor_follows_the_picture_the_node_draws(tmp_path):
    from comfyui_multitalk.models.audio.timeline_image import draw_timeline, timeline_geometry

    frames, fps = 50, 25.0
    activity = torch.zeros(1, frames, dtype=torch.bool)
    activity[0, 10:] = True  # the speaker starts at 0.4 s
    picture = (draw_timeline(activity, fps)[0].numpy() * 255).round().astype(np.int32)
    row = picture[22]  # the middle of speaker 1's row
    first_lit = int(np.flatnonzero(np.abs(row - row[picture.shape[1] // 2]).sum(axis=1) == 0)[0])
    geometry = timeline_geometry(frames, fps, picture.shape[1])
    driver = f"""
    const {{ registered }} = await import("./scripts/app.js");
    const t = await import("./extensions/pack/js/multitalk_timeline.js");
    const geometry = {json.dumps(geometry)};
    const node = {{ comfyClass: "MultiTalkAudioEncode", widgets: [],
      addDOMWidget(name, type, element, options) {{ const w = {{ name, element, options }};
        this.widgets.push(w); return w; }} }};
    registered[0].nodeCreated(node);
    node.onExecuted({{ multitalk_timeline: [{{ filename: "t.png", subfolder: "", type: "temp" }}],
      multitalk_soundtrack: [{{ filename: "s.wav", subfolder: "", type: "temp" }}],
      multitalk_timeline_geometry: [geometry] }});
    const view = node.multitalkTimeline;
    view.audio.currentTime = 0.4; view.place();
    const widget = node.widgets[0];
    console.log(JSON.stringify({{ at: t.cursorFraction(0.4, geometry) * geometry.image_width,
      back: t.timeAt(t.cursorFraction(1.3, geometry), geometry), left: view.cursor.style.left,
      image: view.image.src, sound: view.audio.src, play: view.play.disabled,
      widget: [widget.name, widget.options.serialize, widget.options.getMinHeight(), widget.serialize] }}));
    """
    report = run_driver(tmp_path, driver)
    assert abs(report["at"] - first_lit) <= 1  # the cursor at 0.4 s sits where the speaker's colour starts
    assert report["back"] == pytest.approx(1.3)
    assert report["left"].startswith(f"calc({100 * report['at'] / geometry['image_width']:.3f}%")
    assert report["image"] == "/api/view?filename=t.png&subfolder=&type=temp"
    assert report["sound"] == "/api/view?filename=s.wav&subfolder=&type=temp" and report["play"] is False
    assert report["widget"] == ["multitalk_timeline", False, 130, False]
