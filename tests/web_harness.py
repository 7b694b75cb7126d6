"""Running the pack's frontend modules in Node.js, laid out as ComfyUI serves them.

ComfyUI serves WEB_DIRECTORY (web/) at /extensions/<pack folder>/ and the frontend's module
shims at /scripts/, so web/js/x.js is /extensions/<pack>/js/x.js and its imports resolve from
there. The stand-ins below replace the shims (app, api, widgets) and the few browser objects the
modules touch (document, Image, Audio), recording what the modules do with them.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

APP_STANDIN = """
export const registered = [];
export const app = { registerExtension(ext) { registered.push(ext); }, graph: null };
"""
API_STANDIN = """
export const listeners = {};
export const fetched = [];
export const responses = [];
export const api = {
  addEventListener(name, fn) { (listeners[name] ||= []).push(fn); },
  dispatch(name, detail) { for (const fn of listeners[name] || []) fn({ detail }); },
  apiURL(path) { return "/api" + path; },
  async fetchApi(route, options) {
    fetched.push([route, JSON.parse(options.body)]);
    const answer = responses.shift() ?? { ok: false, error: "no response queued" };
    return { json: async () => answer };
  },
};
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
# Enough DOM for the modules to build their elements outside a browser: elements record their
# children and listeners; canvases are 400 x 300 CSS pixels with no 2-D context (nothing drawn).
BROWSER_STANDIN = """
class Element {
  constructor(tag) { Object.assign(this, { tag, style: {}, children: [], listeners: {}, dataset: {},
    textContent: "", clientWidth: 400, clientHeight: 300 }); }
  append(...nodes) { this.children.push(...nodes); }
  replaceChildren(...nodes) { this.children = nodes; }
  addEventListener(name, fn) { this.listeners[name] = fn; }
  setPointerCapture() {}
  getContext() { return null; }
  getBoundingClientRect() { return { left: 0, top: 0, width: this.clientWidth, height: this.clientHeight }; }
}
globalThis.document = { createElement: (tag) => new Element(tag) };
globalThis.Image = class extends Element { constructor() { super("img"); } };
globalThis.Audio = class { constructor() { this.paused = true; this.currentTime = 0; this.src = ""; }
  play() { this.paused = false; } pause() { this.paused = true; } };
globalThis.requestAnimationFrame = () => 0;
"""


def node_binary() -> str | None:
    return shutil.which("node")


def run_driver(tmp_path: Path, driver: str, pack_folder: str = "pack") -> dict:
    """Run `driver` (an ES module, top-level await allowed) beside the served tree; its last
    printed line is JSON, returned as a dict."""
    (tmp_path / "scripts").mkdir(exist_ok=True)
    (tmp_path / "scripts" / "app.js").write_text(APP_STANDIN)
    (tmp_path / "scripts" / "api.js").write_text(API_STANDIN)
    (tmp_path / "scripts" / "widgets.js").write_text(WIDGETS_STANDIN)
    (tmp_path / "browser.js").write_text(BROWSER_STANDIN)
    target = tmp_path / "extensions" / pack_folder
    if not target.exists():
        shutil.copytree(REPO / "web", target)
    (tmp_path / "package.json").write_text('{"type": "module"}')
    (tmp_path / "driver.js").write_text('import "./browser.js";\n' + driver)
    out = subprocess.run([node_binary(), "driver.js"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])
