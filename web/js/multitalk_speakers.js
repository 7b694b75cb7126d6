// The speaker editor on MultiTalk Speakers (see lib/speaker_editor.js): it asks the pack's server
// route (nodes/speaker_routes.py) for the layout the node would build from the pictures and
// settings now in the graph, whenever they change, and writes edits into the node's inputs.
import { app, api } from "./lib/comfy.js";
import { addFixedWidget } from "./lib/dom_widget.js";
import { requestBody, setBoxes, swapMasks } from "./lib/graph_sources.js";
import { WEB_WIDGET_HEIGHTS } from "./lib/sizes.js";
import { SpeakerEditor } from "./lib/speaker_editor.js";

export const NODE_TYPE = "MultiTalkSpeakers";
export const ROUTE = "/multitalk/speakers/layout";
const HEIGHT = WEB_WIDGET_HEIGHTS[NODE_TYPE];
const DEBOUNCE_MS = 250;

// A Load Image value ("sub/x.png", "x.png [output]") -> /view query of that file.
export function viewParams(value) {
  let name = String(value);
  let type = "input";
  const annotated = /^(.*) \[(input|output|temp)\]$/.exec(name);
  if (annotated) [, name, type] = annotated;
  const cut = name.lastIndexOf("/");
  return { filename: name.slice(cut + 1), subfolder: cut >= 0 ? name.slice(0, cut) : "", type };
}

export async function fetchLayout(body) {
  try {
    const response = await api.fetchApi(ROUTE, { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body) });
    return await response.json();
  } catch (error) {
    return { ok: false, error: `The speaker layout could not be fetched: ${error}` };
  }
}

export function attachEditor(node) {
  const editor = new SpeakerEditor(HEIGHT, {
    fetchLayout,
    // channel=rgb: the picture as the model sees it (a painted mask makes pixels transparent)
    pictureURL: (value) => api.apiURL(`/view?${new URLSearchParams({ ...viewParams(value), channel: "rgb" })}`),
    readBody: () => requestBody(node),
    writeBoxes: (text) => setBoxes(node, text),
    swapMasks: (i, j) => swapMasks(node, i, j),
  });
  node.multitalkEditor = editor;
  node.multitalkShowNotes = (notes) => editor.showRunNotes(notes); // read by multitalk_notes.js
  addFixedWidget(node, "multitalk_speaker_editor", editor.root, HEIGHT);
  let signature = "";
  let timer = null;
  // Anything that changes the layout (pictures, links, settings) changes the request body.
  const check = () => {
    const next = JSON.stringify(requestBody(node));
    if (next === signature) return;
    signature = next;
    clearTimeout(timer);
    timer = setTimeout(() => editor.refresh(), DEBOUNCE_MS);
  };
  const onDrawForeground = node.onDrawForeground;
  node.onDrawForeground = function () {
    onDrawForeground?.apply(this, arguments);
    check();
  };
  return editor;
}

app.registerExtension({
  name: "MultiTalk.SpeakerEditor",
  nodeCreated(node) {
    if ((node.comfyClass ?? node.type) === NODE_TYPE) attachEditor(node);
  },
});
