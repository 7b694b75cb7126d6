"""The template browser's picture of a shipped workflow: its graph drawn small.

ComfyUI's template browser shows `<name>.jpg` beside each custom-node template; this draws the
UI workflow's groups, nodes (with their titles), links and read-me note, fitted into a square,
so the picture matches the canvas the template opens.
"""
from __future__ import annotations

import io

SIZE = 512
MARGIN = 16
BACKGROUND = (24, 24, 27)
NODE_FILL, NODE_TITLE, NODE_TEXT = (53, 53, 58), (34, 34, 38), (222, 222, 222)
NOTE_FILL = (101, 85, 51)
LINK = (150, 170, 190)
TITLE_HEIGHT = 30


def _hex(colour: str) -> tuple[int, int, int]:
    colour = colour.lstrip("#")
    if len(colour) == 3:
        colour = "".join(c * 2 for c in colour)
    return tuple(int(colour[i:i + 2], 16) for i in (0, 2, 4))


def _frame(ui: dict) -> tuple[float, float, float]:
    """(scale, x shift, y shift) that fit every node and group into the square."""
    boxes = [(n["pos"][0], n["pos"][1] - TITLE_HEIGHT, n["pos"][0] + n["size"][0], n["pos"][1] + n["size"][1])
             for n in ui["nodes"]]
    boxes += [(g["bounding"][0], g["bounding"][1], g["bounding"][0] + g["bounding"][2],
               g["bounding"][1] + g["bounding"][3]) for g in ui.get("groups", [])]
    left, top = min(b[0] for b in boxes), min(b[1] for b in boxes)
    right, bottom = max(b[2] for b in boxes), max(b[3] for b in boxes)
    scale = (SIZE - 2 * MARGIN) / max(right - left, bottom - top)
    return scale, MARGIN - left * scale + (SIZE - 2 * MARGIN - (right - left) * scale) / 2, \
        MARGIN - top * scale + (SIZE - 2 * MARGIN - (bottom - top) * scale) / 2


def draw_thumbnail(ui: dict):
    """A PIL image (RGB, SIZE x SIZE) of the UI-format workflow `ui`."""
    from PIL import Image, ImageDraw, ImageFont

    scale, dx, dy = _frame(ui)
    at = lambda x, y: (x * scale + dx, y * scale + dy)  # noqa: E731
    image = Image.new("RGB", (SIZE, SIZE), BACKGROUND)
    draw = ImageDraw.Draw(image, "RGBA")
    font = ImageFont.load_default(size=max(8, round(22 * scale)))
    for group in ui.get("groups", []):
        x, y, w, h = group["bounding"]
        draw.rectangle([at(x, y), at(x + w, y + h)], fill=_hex(group["color"]) + (70,), outline=_hex(group["color"]))
    nodes = {n["id"]: n for n in ui["nodes"]}
    for _, source, _, target, slot, _ in ui.get("links", []):
        a, b = nodes[source], nodes[target]
        start = at(a["pos"][0] + a["size"][0], a["pos"][1] + 10)
        end = at(b["pos"][0], b["pos"][1] + 10 + 20 * slot)
        draw.line([start, end], fill=LINK + (140,), width=1)
    for node in ui["nodes"]:
        x, y = node["pos"]
        w, h = node["size"]
        note = node["type"] == "MarkdownNote"
        draw.rectangle([at(x, y - TITLE_HEIGHT), at(x + w, y + h)], fill=NOTE_FILL if note else NODE_FILL)
        draw.rectangle([at(x, y - TITLE_HEIGHT), at(x + w, y)], fill=NODE_TITLE)
        draw.text(at(x + 8, y - TITLE_HEIGHT + 4), node.get("title", node["type"]), fill=NODE_TEXT, font=font)
    return image


def thumbnail_jpeg(ui: dict) -> bytes:
    buffer = io.BytesIO()
    draw_thumbnail(ui).save(buffer, format="JPEG", quality=88)
    return buffer.getvalue()


def same_picture(jpeg: bytes, ui: dict, tolerance: float = 12.0) -> bool:
    """Whether a stored thumbnail shows `ui`: both pictures averaged over 16x16-pixel cells differ
    by at most `tolerance` (0..255) anywhere, so another JPEG encoder's rounding (a few levels)
    still counts as the same picture while a moved or missing node (tens of levels) does not."""
    import numpy as np
    from PIL import Image

    def cells(picture) -> "np.ndarray":
        return np.asarray(picture.convert("RGB").resize((SIZE // 16, SIZE // 16), Image.BOX), dtype=np.float32)

    try:
        stored = Image.open(io.BytesIO(jpeg))
        stored.load()
    except Exception:  # not an image at all
        return False
    if stored.size != (SIZE, SIZE):
        return False
    return float(np.abs(cells(stored) - cells(draw_thumbnail(ui))).max()) <= tolerance
