// The one place the pack's frontend imports ComfyUI. ComfyUI serves this file at
// /extensions/<pack folder>/js/lib/comfy.js and the frontend's module shims at /scripts/, so the
// paths below resolve under any pack folder name.
export { app } from "../../../../scripts/app.js";
export { api } from "../../../../scripts/api.js";
export { ComfyWidgets } from "../../../../scripts/widgets.js";
