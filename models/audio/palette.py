"""Speaker colours shared by every picture the pack draws (timeline, masks, previews).

Speaker k (0-based) always gets SPEAKER_COLORS[k % len(SPEAKER_COLORS)], so the audio
timeline row of a speaker and that speaker's mask overlay match.
"""
from __future__ import annotations

# RGB, 0..255. Distinct hues that stay readable on a dark background and for common colour
# blindness (Okabe-Ito based).
SPEAKER_COLORS: tuple[tuple[int, int, int], ...] = (
    (230, 159, 0),  # orange
    (86, 180, 233),  # sky blue
    (0, 158, 115),  # bluish green
    (240, 228, 66),  # yellow
    (204, 121, 167),  # reddish purple
    (213, 94, 0),  # vermillion
    (0, 114, 178),  # blue
    (190, 190, 190),  # grey
)


def speaker_color(index: int) -> tuple[int, int, int]:
    """RGB colour (0..255) of speaker `index` (0-based)."""
    return SPEAKER_COLORS[index % len(SPEAKER_COLORS)]
