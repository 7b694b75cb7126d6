"""The frontend extension, run in Node against stand-ins of ComfyUI's app and widgets modules
(same relative paths as ComfyUI serves them): MultiTalk nodes show their notes, others do not."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

APP_STANDIN = """
export const registered = [];
export const app = { registerExtension(ext) { registered.push(ext); } };
"""
WIDGETS_STANDIN = """
export const ComfyWidgets = {
  STRING(node, name, spec, app) {
    const widget = { name, value: "", inputEl: { style: {} } };
    (node.widgets ||= []).push(widget);
    return { widget };
  },
};
"""
DRIVER = """
import { registered } from "./scripts/app.js";
await import("./extensions/pack/js/multitalk_notes.js");
const results = {};
for (const name of ["MultiTalkSampler", "KSampler"]) {
  function NodeType() {}
  NodeType.prototype.onExecuted = function () { this.seen = true; };
  await registered[0].beforeRegisterNodeDef(NodeType, { name });
  const node = new NodeType();
  node.onExecuted({ multitalk_notes: ["first note", "second note"] });
  node.onExecuted({ multitalk_notes: ["updated"] });
  results[name] = { seen: !!node.seen, widgets: (node.widgets || []).map((w) => [w.name, w.value, w.serialize]) };
}
console.log(JSON.stringify({ name: registered[0].name, results }));
"""


@pytest.fixture
def node_binary():
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed")
    return node


def test_notes_widget_on_multitalk_nodes_only(tmp_path, node_binary):
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "app.js").write_text(APP_STANDIN)
    (tmp_path / "scripts" / "widgets.js").write_text(WIDGETS_STANDIN)
    # ComfyUI serves WEB_DIRECTORY (web/) at /extensions/<pack folder>/, so web/js/x.js is
    # /extensions/<pack>/js/x.js and its imports resolve from there.
    shutil.copytree(REPO / "web", tmp_path / "extensions" / "pack")
    (tmp_path / "package.json").write_text('{"type": "module"}')
    (tmp_path / "driver.js").write_text(DRIVER)
    out = subprocess.run([node_binary, "driver.js"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["name"] == "MultiTalk.NodeNotes"
    sampler, other = report["results"]["MultiTalkSampler"], report["results"]["KSampler"]
    assert sampler == {"seen": True, "widgets": [["notes", "updated", False]]}  # one box, refreshed, not saved
    assert other == {"seen": True, "widgets": []}
