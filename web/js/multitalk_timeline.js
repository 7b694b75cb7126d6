// Who speaks when, audible: the MultiTalk Audio Encode node shows its timeline picture in full
// with a play button that plays the mixed soundtrack and a cursor that runs over the picture
// (click the picture to jump there). The node sends the picture, the soundtrack (a temp WAV) and
// where time runs on the picture in its UI output (nodes/audio_ui.py).
import { app, api } from "./lib/comfy.js";
import { addFixedWidget, el } from "./lib/dom_widget.js";
import { WEB_WIDGET_HEIGHTS } from "./lib/sizes.js";

export const NODE_TYPE = "MultiTalkAudioEncode";
const HEIGHT = WEB_WIDGET_HEIGHTS[NODE_TYPE];

// Fraction (0..1) of the picture's width where second `time` is drawn.
export function cursorFraction(time, geometry) {
  const share = geometry.duration > 0 ? Math.min(Math.max(time / geometry.duration, 0), 1) : 0;
  return (geometry.plot_left + share * geometry.plot_width) / geometry.image_width;
}

// The second a click at `fraction` of the picture's width points at.
export function timeAt(fraction, geometry) {
  const share = (fraction * geometry.image_width - geometry.plot_left) / geometry.plot_width;
  return Math.min(Math.max(share, 0), 1) * geometry.duration;
}

export function viewURL(file) {
  const query = new URLSearchParams({ filename: file.filename, subfolder: file.subfolder ?? "",
    type: file.type ?? "temp" });
  return api.apiURL(`/view?${query}`);
}

function clock(seconds) {
  const s = Math.max(0, seconds || 0);
  return `${Math.floor(s / 60)}:${(s % 60).toFixed(1).padStart(4, "0")}`;
}

export class TimelineView {
  constructor() {
    this.root = el("div", { display: "flex", flexDirection: "column", gap: "4px", height: `${HEIGHT}px`,
      boxSizing: "border-box", padding: "2px 4px", color: "#ccc", font: "12px sans-serif" });
    this.frame = el("div", { position: "relative", flex: "1", minHeight: "0", display: "flex",
      alignItems: "center", justifyContent: "center" });
    this.picture = el("div", { position: "relative", maxWidth: "100%", maxHeight: "100%" });
    this.image = el("img", { display: "block", maxWidth: "100%", maxHeight: `${HEIGHT - 60}px`, cursor: "pointer" });
    this.cursor = el("div", { position: "absolute", top: "0", bottom: "0", width: "2px", background: "#fff",
      boxShadow: "0 0 3px #000", display: "none", pointerEvents: "none" });
    this.hint = el("div", { opacity: "0.7", textAlign: "center" },
      "Run the workflow (or just this node) to see and hear who speaks when.");
    this.picture.append(this.image, this.cursor);
    this.frame.append(this.picture, this.hint);
    this.play = el("button", { minWidth: "84px", whiteSpace: "nowrap" }, "▶ Play");
    this.time = el("span", { opacity: "0.8" });
    this.notes = el("div", { flex: "1", overflow: "auto", maxHeight: "32px", fontSize: "11px", color: "#e9c46a" });
    const controls = el("div", { display: "flex", gap: "8px", alignItems: "center" });
    controls.append(this.play, this.time, this.notes);
    this.root.append(this.frame, controls);
    this.audio = new Audio();
    this.geometry = null;
    this.play.disabled = true;
    this.play.onclick = () => (this.audio.paused ? this.audio.play() : this.audio.pause());
    this.audio.onplay = () => { this.play.textContent = "❚❚ Pause"; this.tick(); };
    this.audio.onpause = () => { this.play.textContent = "▶ Play"; this.place(); };
    this.audio.ontimeupdate = () => this.place();
    this.image.onclick = (event) => this.seek(event);
  }

  show(picture, soundtrack, geometry) {
    this.audio.pause();
    this.geometry = geometry ?? null;
    this.hint.style.display = picture ? "none" : "";
    if (picture) this.image.src = viewURL(picture);
    this.play.disabled = !soundtrack;
    if (soundtrack) this.audio.src = viewURL(soundtrack);
    this.place();
  }

  showNotes(notes) {
    this.notes.textContent = notes.join(" · ");
    this.notes.title = notes.join("\n");
  }

  place() {
    const time = this.audio.currentTime || 0;
    this.time.textContent = this.geometry ? `${clock(time)} / ${clock(this.geometry.duration)}` : "";
    if (!this.geometry) return;
    this.cursor.style.display = "";
    this.cursor.style.left = `calc(${(100 * cursorFraction(time, this.geometry)).toFixed(3)}% - 1px)`;
  }

  tick() {
    this.place();
    if (!this.audio.paused) requestAnimationFrame(() => this.tick());
  }

  seek(event) {
    if (!this.geometry) return;
    const box = this.image.getBoundingClientRect();
    this.audio.currentTime = timeAt((event.clientX - box.left) / box.width, this.geometry);
    this.place();
  }
}

app.registerExtension({
  name: "MultiTalk.Timeline",
  nodeCreated(node) {
    if (node.comfyClass !== NODE_TYPE && node.type !== NODE_TYPE) return;
    const view = new TimelineView();
    node.multitalkTimeline = view;
    node.multitalkShowNotes = (notes) => view.showNotes(notes); // read by multitalk_notes.js
    addFixedWidget(node, "multitalk_timeline", view.root, HEIGHT);
    const onExecuted = node.onExecuted;
    node.onExecuted = function (message) {
      onExecuted?.apply(this, arguments);
      view.show(message?.multitalk_timeline?.[0], message?.multitalk_soundtrack?.[0],
        message?.multitalk_timeline_geometry?.[0]);
    };
    const onRemoved = node.onRemoved;
    node.onRemoved = function () {
      view.audio.pause();
      onRemoved?.apply(this, arguments);
    };
  },
});
