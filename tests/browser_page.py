"""ComfyUI's page in headless Chromium (Debian's chromium + chromium-driver, driven by selenium),
for tests/test_comfyui_browser.py: what the browser test reads off the page and how it acts."""
from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import pytest

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--autoplay-policy=no-user-gesture-required", "--window-size=1440,900")
WINDOW = (1440, 900)

# Node boxes on the canvas (title bar included, from the frontend's own getBounding), grown to
# cover the node's DOM widgets where they are drawn (a widget may overflow its node).
BOXES_JS = """
const app = window.app, ds = app.canvas.ds, canvas = app.canvas.canvas.getBoundingClientRect();
return app.graph._nodes.map((node) => {
  const b = Array.from(node.getBounding());
  let [x0, y0, x1, y1] = [b[0], b[1], b[0] + b[2], b[1] + b[3]];
  for (const widget of node.widgets ?? []) {
    const element = widget.element;
    const r = element?.getBoundingClientRect?.();
    if (!r || !r.width || !r.height || element.offsetParent === null) continue;
    const left = (r.left - canvas.left) / ds.scale - ds.offset[0], top = (r.top - canvas.top) / ds.scale - ds.offset[1];
    x0 = Math.min(x0, left); y0 = Math.min(y0, top);
    x1 = Math.max(x1, left + r.width / ds.scale); y1 = Math.max(y1, top + r.height / ds.scale);
  }
  return { id: node.id, type: node.type, title: node.title, box: [x0, y0, x1, y1] };
});
"""
# Where a node is on the screen (CSS pixels), and what of the window the canvas really shows.
SCREEN_JS = """
const app = window.app, ds = app.canvas.ds, canvas = app.canvas.canvas.getBoundingClientRect();
const tabs = document.querySelector(".workflow-tabs")?.getBoundingClientRect();
const node = app.graph.getNodeById(arguments[0]), b = Array.from(node.getBounding());
const screen = (x, y) => [(x + ds.offset[0]) * ds.scale + canvas.left, (y + ds.offset[1]) * ds.scale + canvas.top];
return { node: [...screen(b[0], b[1]), ...screen(b[0] + b[2], b[1] + b[3])],
         view: [canvas.left, Math.max(canvas.top, tabs?.bottom ?? 0), canvas.right, canvas.bottom] };
"""
LOAD_JS = """
const [workflow, done] = [arguments[0], arguments[arguments.length - 1]];
window.app.loadGraphData(workflow).then(() => done(true), (error) => done(String(error)));
"""
STATE_JS = """
const graph = window.app.graph.serialize();
return { nodes: Object.fromEntries(graph.nodes.map((n) => [n.id, { type: n.type, values: n.widgets_values ?? [] }])),
         links: graph.links.map((l) => Array.isArray(l) ? l.slice(0, 5) : [l.id, l.origin_id, l.origin_slot,
                                                                         l.target_id, l.target_slot]) };
"""
SET_WIDGETS_JS = """
const [byType, byId] = arguments;
for (const node of window.app.graph._nodes) {
  const values = { ...(byType[node.type] ?? {}), ...(byId[node.id] ?? {}) };
  for (const widget of node.widgets ?? []) if (widget.name in values) widget.value = values[widget.name];
}
"""


def skip_without_chromium() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("install Debian's chromium and chromium-driver to run the browser test")
    pytest.importorskip("selenium")
    return chromium, driver


class Page:
    """One Chromium window on ComfyUI."""

    def __init__(self, url: str, shots: Path):
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service

        chromium, driver = skip_without_chromium()
        options = Options()
        for flag in CHROMIUM_FLAGS + (f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-')}",):
            options.add_argument(flag)
        options.binary_location = chromium
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(service=Service(driver), options=options)
        self.driver.set_window_size(*WINDOW)
        self.driver.set_script_timeout(120)
        self.url, self.shots, self.logs = url, shots, []
        shots.mkdir(parents=True, exist_ok=True)
        self.driver.get(url)
        self.wait_for("return !!(window.app?.graph && window.app?.canvas && window.app?.extensions)", 180)

    def close(self) -> None:
        self.driver.quit()

    def js(self, script: str, *args):
        return self.driver.execute_script(script, *args)

    def wait_for(self, script: str, timeout_s: float, *args):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = self.js(script, *args)
            if value:
                return value
            time.sleep(0.5)
        raise AssertionError(f"timed out after {timeout_s} s waiting for: {script}")

    def load(self, workflow: dict) -> None:
        assert self.driver.execute_async_script(LOAD_JS, workflow) is True
        time.sleep(2)  # DOM widgets are placed on the next frames

    def close_dialogs(self) -> str:
        """Text of the open dialogs (e.g. missing models), which are then closed."""
        text = self.js("return [...document.querySelectorAll('.p-dialog')].map((d) => d.innerText).join('\\n')")
        self.js("document.querySelectorAll('.p-dialog-close-button').forEach((b) => b.click())")
        time.sleep(0.5)
        return text

    def view(self, scale: float, offset: tuple) -> None:
        self.js("const ds = window.app.canvas.ds; ds.scale = arguments[0]; ds.offset = arguments[1];"
                "window.app.canvas.setDirty(true, true);", scale, list(offset))
        time.sleep(1)

    def focus(self, node_id: int, scale: float = 1.0, down: int = 0) -> None:
        """The node at the top left of the canvas (`down` canvas pixels further into it)."""
        position = self.js("return window.app.graph.getNodeById(arguments[0]).pos", node_id)
        self.view(scale, (-position[0] + 60, -position[1] + 80 - down))

    def shot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    def pack_errors(self, pack_folder: str) -> list[str]:
        """Console errors that come from the pack: its served files, its server route, or one of its
        extensions failing inside the frontend ("Error calling extension 'MultiTalk.X' ...")."""
        self.logs += self.driver.get_log("browser")
        marks = (f"/extensions/{pack_folder}/", "/multitalk/", "'MultiTalk.")
        return [entry["message"] for entry in self.logs
                if entry["level"] == "SEVERE" and any(mark in entry["message"] for mark in marks)]


def overlapping(boxes: list[dict]) -> list[tuple]:
    return [(a["title"], b["title"]) for i, a in enumerate(boxes) for b in boxes[i + 1:]
            if a["box"][0] < b["box"][2] and b["box"][0] < a["box"][2]
            and a["box"][1] < b["box"][3] and b["box"][1] < a["box"][3]]
