// Shows what a MultiTalk node noted while it ran (sampler plan changes, speaker-placement
// fallbacks, silent tracks) on the node itself, so notes are seen where the node is rather than
// only in the server console. The nodes send them as the "multitalk_notes" entry of their UI
// output (nodes/comfy_bridge.py, notes_ui). Nodes with a picture of their own (the speaker
// editor, the timeline) show them inside it; the others get a read-only text box, and the node
// only ever grows to fit it.
import { app, ComfyWidgets } from "./lib/comfy.js";

const NOTES_KEY = "multitalk_notes";
const WIDGET_NAME = "notes";

export function growToFit(node) {
  const needed = node.computeSize?.();
  if (!needed || !node.size) return;
  node.setSize?.([Math.max(node.size[0], needed[0]), Math.max(node.size[1], needed[1])]);
  node.setDirtyCanvas?.(true, true);
}

export function showNotes(node, notes) {
  if (typeof node.multitalkShowNotes === "function") {
    node.multitalkShowNotes(notes);
    return;
  }
  let widget = node.widgets?.find((w) => w.name === WIDGET_NAME);
  if (!widget) {
    if (!notes.length) return;
    widget = ComfyWidgets.STRING(node, WIDGET_NAME, ["STRING", { multiline: true }], app).widget;
    widget.serialize = false; // display only: never written into saved workflows
    widget.options = { ...widget.options, serialize: false }; // nor into the prompt
    if (widget.inputEl) {
      widget.inputEl.readOnly = true;
      widget.inputEl.style.opacity = 0.8;
    }
  }
  widget.value = notes.join("\n");
  growToFit(node);
}

app.registerExtension({
  name: "MultiTalk.NodeNotes",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!nodeData?.name?.startsWith("MultiTalk")) return;
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      onExecuted?.apply(this, arguments);
      const notes = message?.[NOTES_KEY];
      showNotes(this, Array.isArray(notes) ? notes.map(String) : []); // a run without notes clears them
    };
  },
});
