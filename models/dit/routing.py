"""Speaker-routing modes of the audio cross-attention and their speaker limits.

- "lrope": the paper's L-RoPE. Trained (released weights) for one and two speakers; for three
  or more the label ranges are generalised (see docs/model.md), which the weights never saw.
- "masked": each speaker's audio tokens attended separately, the result gated by that
  speaker's adaptive localisation mask and summed. Untrained combination of trained parts;
  works for any count up to the limit below.
"""
from __future__ import annotations

ROUTING_MODES = ("lrope", "masked")

# Upper bounds that the pack accepts per mode (memory and label spacing stay sane below these).
MAX_SPEAKERS = {"lrope": 6, "masked": 8}

# The released weights were trained with these L-RoPE label ranges (official class_range 24,
# class_interval 4): speaker 1 in [0, 4], speaker 2 in [20, 24], background at 12.
LROPE_CLASS_RANGE = 24
LROPE_CLASS_INTERVAL = 4
