// Pure geometry of the speaker editor: the `boxes` text of the Speakers node (one line per
// speaker, "x, y, width, height" in pixels of the reference image, or fractions 0..1; "auto" or a
// blank line = automatic, as models/speakers/regions.py reads it), and the mapping between the
// reference image, the bucketed image the sampler uses (resize, then centre crop) and the view.

const AUTO_WORDS = new Set(["", "auto", "-"]);

// Text -> one entry per line: null (automatic) or [x, y, w, h] as written; trailing blanks dropped.
export function parseBoxLines(text) {
  const lines = String(text ?? "").split(/\r?\n/);
  while (lines.length && !lines[lines.length - 1].trim()) lines.pop();
  return lines.map((line) => {
    const word = line.trim().toLowerCase();
    if (AUTO_WORDS.has(word)) return null;
    const values = word.split(/[,\s;]+/).filter(Boolean).map(Number);
    return values.length === 4 && values.every(Number.isFinite) ? values : null;
  });
}

// Entries -> text: whole pixels, "auto" for automatic, no trailing automatic lines.
export function formatBoxLines(entries) {
  const lines = entries.map((box) => (box ? box.map((v) => String(Math.round(v))).join(", ") : "auto"));
  while (lines.length && lines[lines.length - 1] === "auto") lines.pop();
  return lines.join("\n");
}

// A box as written -> pixels of the reference image (fractions when all four are <= 1).
export function boxToPixels(box, layout) {
  if (box.every((v) => v <= 1)) {
    return [box[0] * layout.source_width, box[1] * layout.source_height,
      box[2] * layout.source_width, box[3] * layout.source_height];
  }
  return box.slice();
}

function scales(layout) {
  return [layout.resized_width / layout.source_width, layout.resized_height / layout.source_height];
}

// [x, y, w, h] in reference pixels -> [x0, y0, x1, y1] in bucket pixels.
export function refToBucket(layout, [x, y, w, h]) {
  const [sx, sy] = scales(layout);
  return [x * sx - layout.left, y * sy - layout.top, (x + w) * sx - layout.left, (y + h) * sy - layout.top];
}

// [x0, y0, x1, y1] in bucket pixels -> [x, y, w, h] in whole reference pixels, inside the picture.
export function bucketToRef(layout, [x0, y0, x1, y1]) {
  const [sx, sy] = scales(layout);
  const left = Math.max(0, Math.round((Math.min(x0, x1) + layout.left) / sx));
  const top = Math.max(0, Math.round((Math.min(y0, y1) + layout.top) / sy));
  const right = Math.min(layout.source_width, Math.round((Math.max(x0, x1) + layout.left) / sx));
  const bottom = Math.min(layout.source_height, Math.round((Math.max(y0, y1) + layout.top) / sy));
  return [left, top, Math.max(1, right - left), Math.max(1, bottom - top)];
}

// The part of the reference image the bucket shows: [sx, sy, sw, sh] for drawImage.
export function cropRect(layout) {
  const [sx, sy] = scales(layout);
  return [layout.left / sx, layout.top / sy, layout.width / sx, layout.height / sy];
}

// The bucket fitted into a width x height area: scale and top-left corner.
export function fitView(layout, width, height) {
  const scale = Math.min(width / layout.width, height / layout.height);
  return { scale, x: (width - layout.width * scale) / 2, y: (height - layout.height * scale) / 2 };
}

export function toView(view, [x0, y0, x1, y1]) {
  return [view.x + x0 * view.scale, view.y + y0 * view.scale, view.x + x1 * view.scale, view.y + y1 * view.scale];
}

export function fromView(view, [x, y]) {
  return [(x - view.x) / view.scale, (y - view.y) / view.scale];
}

const CORNERS = { nw: [0, 1], ne: [2, 1], sw: [0, 3], se: [2, 3] };

// What a press at `point` (view pixels) grabs of a view box [x0, y0, x1, y1]: a corner, the box, or null.
export function grab(rect, point, handle = 8) {
  for (const [name, [ix, iy]] of Object.entries(CORNERS)) {
    if (Math.abs(point[0] - rect[ix]) <= handle && Math.abs(point[1] - rect[iy]) <= handle) return name;
  }
  const inside = point[0] >= rect[0] && point[0] <= rect[2] && point[1] >= rect[1] && point[1] <= rect[3];
  return inside ? "move" : null;
}

// A bucket box after dragging `part` by (dx, dy) bucket pixels, kept inside the bucket and at
// least `min` pixels wide and high.
export function dragBox(box, part, dx, dy, layout, min = 16) {
  let [x0, y0, x1, y1] = box;
  if (part === "move") {
    const mx = Math.min(Math.max(dx, -x0), layout.width - x1);
    const my = Math.min(Math.max(dy, -y0), layout.height - y1);
    return [x0 + mx, y0 + my, x1 + mx, y1 + my];
  }
  if (part.includes("w")) x0 = Math.min(Math.max(0, x0 + dx), x1 - min);
  if (part.includes("e")) x1 = Math.max(Math.min(layout.width, x1 + dx), x0 + min);
  if (part.includes("n")) y0 = Math.min(Math.max(0, y0 + dy), y1 - min);
  if (part.includes("s")) y1 = Math.max(Math.min(layout.height, y1 + dy), y0 + min);
  return [x0, y0, x1, y1];
}

// The box spanned by two bucket points, clipped to the bucket.
export function spanBox(a, b, layout) {
  const clip = (v, hi) => Math.min(Math.max(v, 0), hi);
  return [clip(Math.min(a[0], b[0]), layout.width), clip(Math.min(a[1], b[1]), layout.height),
    clip(Math.max(a[0], b[0]), layout.width), clip(Math.max(a[1], b[1]), layout.height)];
}

// Box lines for every speaker of `layout`, each speaker's current region made explicit (used
// before reordering, so a speaker keeps its region under its new track number).
export function explicitLines(layout, lines) {
  return layout.speakers.map((speaker, k) => {
    if (speaker.source === "mask") return null; // a painted mask wins over any line
    return lines[k] ?? speaker.box.slice();
  });
}

// Swap entries i and j of a list (copy).
export function swapped(list, i, j) {
  const out = list.slice();
  [out[i], out[j]] = [out[j], out[i]];
  return out;
}
