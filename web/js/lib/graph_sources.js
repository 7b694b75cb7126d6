// What feeds the Speakers node, read from the graph in the browser: the Load Image pictures on
// its image and mask inputs, the number of audio tracks, and its own settings. This is the body
// of the editor's request to the server (nodes/speaker_routes.py), and rewiring masks when
// speakers are reordered.

export const MASK_INPUTS = ["mask_1", "mask_2", "mask_3", "mask_4"];
export const UNREADABLE = "connected"; // fed by a node whose picture the editor cannot read

function slotOf(node, name) {
  return node.inputs?.findIndex((input) => input.name === name) ?? -1;
}

// { node, slot } that feeds input `name` of `node`, or null when it is not connected.
export function origin(node, name) {
  const slot = slotOf(node, name);
  const linkId = slot >= 0 ? node.inputs[slot].link : null;
  if (linkId === null || linkId === undefined) return null;
  const links = node.graph?.links;
  const link = links?.get?.(linkId) ?? links?.[linkId];
  if (!link) return null;
  const source = node.graph.getNodeById(link.origin_id);
  return source ? { node: source, slot: link.origin_slot } : null;
}

function widgetValue(node, name) {
  return node?.widgets?.find((w) => w.name === name)?.value;
}

// The picture file behind an input: a Load Image's file name, UNREADABLE, or null (not connected).
export function pictureName(node, name) {
  const source = origin(node, name);
  if (!source) return null;
  const value = widgetValue(source.node, "image");
  return typeof value === "string" && value ? value : UNREADABLE;
}

// Audio tracks of the Audio Encode node feeding `audio` (tracks plus listeners), or null.
export function trackCount(node) {
  const source = origin(node, "audio")?.node;
  if (!source || (source.comfyClass ?? source.type) !== "MultiTalkAudioEncode") return null;
  const tracks = (source.inputs ?? []).filter((input) => /^audio_\d+$/.test(input.name) && input.link != null);
  return tracks.length + Number(widgetValue(source, "listeners") || 0);
}

export function requestBody(node) {
  return {
    image: pictureName(node, "image"),
    masks: MASK_INPUTS.map((name) => pictureName(node, name)),
    boxes: widgetValue(node, "boxes") ?? "",
    num_speakers: Number(widgetValue(node, "num_speakers") || 0),
    resolution: widgetValue(node, "resolution") ?? "480p",
    overlap: widgetValue(node, "overlap") ?? "nearest_center",
    tracks: trackCount(node),
  };
}

// Change the Speakers node's boxes text the way typing it would.
export function setBoxes(node, text) {
  const widget = node.widgets?.find((w) => w.name === "boxes");
  if (!widget || widget.value === text) return;
  widget.value = text;
  widget.callback?.(text);
  node.setDirtyCanvas?.(true, true);
}

// Swap what feeds mask_{i+1} and mask_{j+1} (either may be unconnected).
export function swapMasks(node, i, j) {
  const a = origin(node, MASK_INPUTS[i]);
  const b = origin(node, MASK_INPUTS[j]);
  for (const [from, to] of [[a, j], [b, i]]) {
    const slot = slotOf(node, MASK_INPUTS[to]);
    if (slot < 0) continue;
    if (from) from.node.connect(from.slot, node, slot);
    else node.disconnectInput(slot);
  }
}
