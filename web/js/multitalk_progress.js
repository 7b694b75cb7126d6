// Where a long MultiTalk run is: "window 2/5, step 17/40" (or "encoding", "decoding", "CLIP")
// written in the title bar of the running node, next to ComfyUI's own progress bar. The server
// sends it as the "multitalk.progress" event (nodes/comfy_bridge.py, Progress); the latent
// preview of the window comes through ComfyUI's own preview messages.
import { app, api } from "./lib/comfy.js";

export const PROGRESS_EVENT = "multitalk.progress";

export function progressText(detail) {
  if (!detail?.text) return "";
  const percent = detail.max ? ` · ${Math.floor((100 * detail.value) / detail.max)}%` : "";
  return `${detail.text}${percent}`;
}

export function findNode(graph, id) {
  if (id === undefined || id === null || !graph) return null;
  const last = String(id).split(":").pop(); // subgraph execution ids end with the node's own id
  return graph.getNodeById?.(Number(last)) ?? graph.getNodeById?.(last) ?? null;
}

export function drawProgress(node, ctx) {
  if (!node.multitalkProgress || node.flags?.collapsed) return;
  ctx.save();
  ctx.font = "12px sans-serif";
  ctx.textAlign = "right";
  ctx.fillStyle = "#9fd4ff";
  ctx.fillText(node.multitalkProgress, node.size[0] - 10, -10); // inside the title bar
  ctx.restore();
}

export function onProgress(graph, detail) {
  const node = findNode(graph, detail?.node);
  if (!node) return;
  node.multitalkProgress = progressText(detail);
  node.setDirtyCanvas?.(true, false);
}

app.registerExtension({
  name: "MultiTalk.Progress",
  setup() {
    api.addEventListener(PROGRESS_EVENT, (event) => onProgress(app.graph, event.detail));
    api.addEventListener("execution_start", () => {
      for (const node of app.graph?._nodes ?? app.graph?.nodes ?? []) node.multitalkProgress = "";
    });
  },
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!nodeData?.name?.startsWith("MultiTalk")) return;
    const onDrawForeground = nodeType.prototype.onDrawForeground;
    nodeType.prototype.onDrawForeground = function (ctx) {
      onDrawForeground?.apply(this, arguments);
      drawProgress(this, ctx);
    };
  },
});
