// The speaker editor on the Speakers node: the bucketed reference image with each speaker's
// region (the token cells the model sees) in that speaker's colour. Select a speaker with its
// chip; drag on the picture to draw its box, drag the box to move it, drag a corner to resize;
// ◀ ▶ change which track drives whom; Auto hands the speaker back to face detection. Every edit
// is written into the node's own `boxes` input (and mask links when reordering painted
// speakers), so the workflow stays valid without the browser.
import { el } from "./dom_widget.js";
import { speakerColor } from "./palette.js";
import { boxToPixels, bucketToRef, cropRect, dragBox, explicitLines, fitView, formatBoxLines, fromView, grab,
  parseBoxLines, refToBucket, spanBox, swapped, toView } from "./speaker_boxes.js";

const TOOLBAR = 30;
const STATUS = 34;

export class SpeakerEditor {
  constructor(height, { fetchLayout, pictureURL, readBody, writeBoxes, swapMasks }) {
    Object.assign(this, { fetchLayout, pictureURL, readBody, writeBoxes, swapMasks });
    this.layout = null;
    this.selected = 0;
    this.drag = null;
    this.picture = new Image();
    this.picture.onload = () => this.draw();
    this.root = el("div", { display: "flex", flexDirection: "column", height: `${height}px`,
      boxSizing: "border-box", padding: "2px 4px", font: "12px sans-serif", color: "#ccc" });
    this.toolbar = el("div", { display: "flex", gap: "4px", alignItems: "center", height: `${TOOLBAR}px` });
    this.canvas = el("canvas", { width: "100%", height: `${height - TOOLBAR - STATUS - 4}px`, cursor: "crosshair",
      touchAction: "none" });
    this.status = el("div", { height: `${STATUS}px`, overflow: "auto", fontSize: "11px", lineHeight: "14px" });
    this.root.append(this.toolbar, this.canvas, this.status);
    this.canvas.addEventListener("pointerdown", (e) => this.press(e));
    this.canvas.addEventListener("pointermove", (e) => this.move(e));
    this.canvas.addEventListener("pointerup", (e) => this.release(e));
    this.runNotes = [];
  }

  // ---- data ------------------------------------------------------------------------------
  async refresh() {
    const body = this.readBody();
    this.body = body;
    const layout = await this.fetchLayout(body);
    if (body !== this.body) return; // a newer request is on its way
    this.layout = layout?.ok ? layout : null;
    this.error = layout?.ok ? "" : layout?.error ?? "The speaker layout could not be computed.";
    const url = body.image && body.image !== "connected" ? this.pictureURL(body.image) : "";
    if (url && this.pictureSource !== url) {
      this.pictureSource = url;
      this.picture.src = url;
    }
    this.selected = Math.min(this.selected, Math.max(0, (this.layout?.speakers.length ?? 1) - 1));
    this.renderToolbar();
    this.renderStatus();
    this.draw();
  }

  lines() {
    return parseBoxLines(this.body?.boxes ?? "").map((box) => (box ? boxToPixels(box, this.layout) : null));
  }

  commit(lines) {
    const text = formatBoxLines(lines.slice(0, this.layout.speakers.length));
    this.body = { ...this.body, boxes: text }; // drawn at once; the refresh it triggers follows
    this.writeBoxes(text);
    this.renderToolbar();
    this.draw();
  }

  // ---- toolbar and status ----------------------------------------------------------------
  button(label, title, action, enabled = true) {
    const b = el("button", { padding: "1px 6px" }, label);
    Object.assign(b, { title, disabled: !enabled, onclick: action });
    return b;
  }

  renderToolbar() {
    this.toolbar.replaceChildren();
    const speakers = this.layout?.speakers ?? [];
    speakers.forEach((speaker, k) => {
      const chip = this.button(`${k + 1}`, `Speaker ${k + 1} (audio track ${k + 1}): ${speaker.source}`,
        () => { this.selected = k; this.renderToolbar(); this.draw(); });
      Object.assign(chip.style, { background: speakerColor(k + 1, k === this.selected ? 1 : 0.45), color: "#000",
        fontWeight: k === this.selected ? "bold" : "normal", border: k === this.selected ? "2px solid #fff" : "" });
      this.toolbar.append(chip);
    });
    const k = this.selected;
    this.toolbar.append(
      this.button("◀", "Give this region to the previous track", () => this.reorder(k, k - 1), k > 0),
      this.button("▶", "Give this region to the next track", () => this.reorder(k, k + 1), k < speakers.length - 1),
      this.button("Auto", "Place this speaker by face detection again", () => this.setAuto(k),
        !!speakers[k] && speakers[k].source === "box"),
      this.button("⟳", "Detect again", () => this.refresh()));
  }

  renderStatus() {
    const speakers = this.layout?.speakers ?? [];
    const lines = speakers.map((s, k) => `${k + 1}: ${s.source} ${s.box.join(", ")}`);
    const notes = [...(this.layout?.notes ?? []), ...this.runNotes];
    this.status.style.color = this.error ? "#ff8a80" : "#ccc";
    this.status.textContent = this.error || [lines.join(" · "), ...notes].filter(Boolean).join("\n");
    this.status.title = this.status.textContent;
  }

  showRunNotes(notes) {
    this.runNotes = notes;
    this.renderStatus();
  }

  // ---- edits -----------------------------------------------------------------------------
  reorder(i, j) {
    const speakers = this.layout.speakers;
    if (j < 0 || j >= speakers.length) return;
    const lines = swapped(explicitLines(this.layout, this.lines()), i, j);
    if (speakers[i].source === "mask" || speakers[j].source === "mask") this.swapMasks(i, j);
    this.selected = j;
    this.commit(lines);
  }

  setAuto(k) {
    const lines = this.lines();
    lines[k] = null;
    this.commit(lines);
  }

  // ---- drawing ---------------------------------------------------------------------------
  view() {
    const { clientWidth: width, clientHeight: height } = this.canvas;
    return this.layout ? fitView(this.layout, width, height) : null;
  }

  regionBox(k) {
    const line = this.lines()[k];
    if (this.drag?.speaker === k) return this.drag.box;
    return refToBucket(this.layout, line ?? this.layout.speakers[k].box);
  }

  draw() {
    const ctx = this.canvas.getContext?.("2d");
    if (!ctx) return;
    const ratio = globalThis.devicePixelRatio || 1;
    this.canvas.width = Math.max(1, this.canvas.clientWidth * ratio);
    this.canvas.height = Math.max(1, this.canvas.clientHeight * ratio);
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, this.canvas.clientWidth, this.canvas.clientHeight);
    const view = this.view();
    if (!view) return;
    if (this.picture.complete && this.picture.naturalWidth) {
      ctx.drawImage(this.picture, ...cropRect(this.layout), view.x, view.y,
        this.layout.width * view.scale, this.layout.height * view.scale);
    }
    this.layout.speakers.forEach((speaker, k) => this.drawSpeaker(ctx, view, speaker, k));
  }

  drawSpeaker(ctx, view, speaker, k) {
    const [rows, cols] = this.layout.grid_size;
    const cell = (this.layout.width / cols) * view.scale;
    ctx.fillStyle = speakerColor(k + 1, 0.35);
    speaker.grid.forEach((row, r) => {
      for (let c = 0; c < cols; c++) if (row[c] === "1") ctx.fillRect(view.x + c * cell, view.y + r * cell, cell, cell);
    });
    const rect = toView(view, this.regionBox(k));
    ctx.setLineDash(speaker.source === "box" || this.drag?.speaker === k ? [] : [6, 4]);
    ctx.lineWidth = k === this.selected ? 3 : 1.5;
    ctx.strokeStyle = speakerColor(k + 1);
    ctx.strokeRect(rect[0], rect[1], rect[2] - rect[0], rect[3] - rect[1]);
    ctx.setLineDash([]);
    ctx.font = "bold 16px sans-serif";
    ctx.fillStyle = speakerColor(k + 1);
    ctx.fillText(String(k + 1), rect[0] + 5, rect[1] + 18);
    if (k === this.selected && speaker.source !== "mask") {
      for (const [x, y] of [[rect[0], rect[1]], [rect[2], rect[1]], [rect[0], rect[3]], [rect[2], rect[3]]]) {
        ctx.fillRect(x - 4, y - 4, 8, 8);
      }
    }
  }

  // ---- pointer ---------------------------------------------------------------------------
  point(event) {
    const box = this.canvas.getBoundingClientRect();
    return [(event.clientX - box.left) * (this.canvas.clientWidth / box.width),
      (event.clientY - box.top) * (this.canvas.clientHeight / box.height)];
  }

  press(event) {
    const view = this.view();
    const speaker = this.layout?.speakers[this.selected];
    if (!view || !speaker) return;
    event.stopPropagation();
    if (speaker.source === "mask") {
      this.error = `Speaker ${this.selected + 1} is painted (mask_${this.selected + 1}): edit the mask in the ` +
        "mask editor, or disconnect it to draw a box.";
      this.renderStatus();
      return;
    }
    const at = this.point(event);
    const start = this.regionBox(this.selected);
    const part = grab(toView(view, start), at) ?? "draw";
    this.drag = { speaker: this.selected, part, from: fromView(view, at), start, box: start };
    this.canvas.setPointerCapture?.(event.pointerId);
  }

  move(event) {
    if (!this.drag) return;
    event.stopPropagation();
    const here = fromView(this.view(), this.point(event));
    const { part, from, start } = this.drag;
    this.drag.box = part === "draw" ? spanBox(from, here, this.layout)
      : dragBox(start, part, here[0] - from[0], here[1] - from[1], this.layout);
    this.draw();
  }

  release(event) {
    if (!this.drag) return;
    event.stopPropagation();
    const { speaker, box, part } = this.drag;
    this.drag = null;
    const tooSmall = box[2] - box[0] < 8 || box[3] - box[1] < 8;
    if (part === "draw" && tooSmall) { // a click: select the speaker whose region is under it
      this.pick(fromView(this.view(), this.point(event)));
      return;
    }
    const lines = this.lines();
    while (lines.length <= speaker) lines.push(null);
    lines[speaker] = bucketToRef(this.layout, box);
    this.commit(lines);
  }

  pick([x, y]) {
    const hit = this.layout.speakers.findIndex((_, k) => {
      const [x0, y0, x1, y1] = this.regionBox(k);
      return x >= x0 && x <= x1 && y >= y0 && y <= y1;
    });
    if (hit >= 0) this.selected = hit;
    this.renderToolbar();
    this.draw();
  }
}
