"""Who speaks when: RTTM files (NIST's Rich Transcription Time Marked format) and per-speaker
tracks cut from one mixed recording.

An RTTM line `SPEAKER <file> <channel> <onset> <duration> <NA> <NA> <name> <NA> <NA>` says that
`name` speaks from `onset` for `duration` seconds. Each speaker's track is the mix where that
speaker speaks and silence elsewhere (where two speak at once both tracks hold the mix: one
recording cannot be separated here). Speakers are numbered in name order.
"""
from __future__ import annotations

import numpy as np

from ..errors import DatasetInputError

Turns = dict[str, list[tuple[float, float]]]  # speaker name -> [(start s, end s)]


def read_rttm(path: str) -> Turns:
    """Speaker turns of an RTTM file, speakers in name order; DatasetInputError naming a bad line."""
    turns: Turns = {}
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError as exc:
        raise DatasetInputError(f"Cannot read the RTTM file '{path}' ({exc}).") from None
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields or fields[0].startswith(";") or fields[0] != "SPEAKER":
            continue  # comments and other RTTM record types
        try:
            onset, duration, name = float(fields[3]), float(fields[4]), fields[7]
        except (IndexError, ValueError):
            raise DatasetInputError(f"'{path}' line {number} is not an RTTM SPEAKER line ('{line.strip()}'): expected "
                                    "'SPEAKER <file> <channel> <onset> <duration> <NA> <NA> <speaker> <NA> <NA>'.") \
                from None
        if onset < 0 or duration <= 0:
            raise DatasetInputError(f"'{path}' line {number}: onset {onset} / duration {duration} must be >= 0 / > 0.")
        turns.setdefault(name, []).append((onset, onset + duration))
    if not turns:
        raise DatasetInputError(f"'{path}' names no speaker (no SPEAKER lines): write one line per speaker turn.")
    return {name: sorted(turns[name]) for name in sorted(turns)}


def speaker_tracks(mix: np.ndarray, rate: int, turns: Turns) -> list[np.ndarray]:
    """One track per speaker (RTTM name order) from a mono mix [T]: the mix inside the speaker's
    turns, zero elsewhere."""
    tracks = []
    for name, spans in turns.items():
        keep = np.zeros(mix.shape[-1], dtype=bool)
        for start, end in spans:
            keep[int(round(start * rate)):int(round(end * rate))] = True
        if not keep.any():
            raise DatasetInputError(f"Every turn of RTTM speaker '{name}' lies past the end of the recording "
                                    f"({mix.shape[-1] / rate:.2f} s): check the RTTM file belongs to this clip.")
        tracks.append(np.where(keep, mix, 0).astype(np.float32))
    return tracks
