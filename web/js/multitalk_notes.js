// Shows what a MultiTalk node noted while it ran (sampler plan changes, speaker-placement
// fallbacks, silent tracks) in a read-only text box on the node itself, so notes are seen where
// the node is rather than only in the server console. The nodes send them as the
// "multitalk_notes" entry of their UI output (nodes/comfy_bridge.py, notes_ui).
import { app } from "../../../scripts/app.js";
import { ComfyWidgets } from "../../../scripts/widgets.js";

const NOTES_KEY = "multitalk_notes";
const WIDGET_NAME = "notes";

function showNotes(node, notes) {
  let widget = node.widgets?.find((w) => w.name === WIDGET_NAME);
  if (!widget) {
    widget = ComfyWidgets.STRING(node, WIDGET_NAME, ["STRING", { multiline: true }], app).widget;
    widget.serialize = false; // display only: never written into saved workflows
    if (widget.inputEl) {
      widget.inputEl.readOnly = true;
      widget.inputEl.style.opacity = 0.8;
    }
  }
  widget.value = notes.join("\n");
  node.setSize?.(node.computeSize());
  node.setDirtyCanvas?.(true, true);
}

app.registerExtension({
  name: "MultiTalk.NodeNotes",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!nodeData?.name?.startsWith("MultiTalk")) return;
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      onExecuted?.apply(this, arguments);
      const notes = message?.[NOTES_KEY];
      if (Array.isArray(notes) && notes.length) showNotes(this, notes);
    };
  },
});
