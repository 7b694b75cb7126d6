"""LoRAs on the MultiTalk DiT: reading every common Wan 2.1 14B LoRA format (models/lora/keys.py),
matching it to the model with a report of what does not fit, and applying one or several,
merged into the weights or added at compute time, on a copy that shares the base weights."""
from .apply import MODES, apply_loras
from .file import LoraFile, read_lora
from .resolve import LoraReport

__all__ = ["MODES", "apply_loras", "LoraFile", "read_lora", "LoraReport"]
