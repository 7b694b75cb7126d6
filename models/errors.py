"""Typed errors the pack raises for bad user input.

Every message names the offending value (file, track, key, number) and says what to do, so
ComfyUI shows something actionable instead of a stack trace from deep inside torch.
All of them derive from ValueError, which is what ComfyUI and plain Python callers expect
for bad input.
"""
from __future__ import annotations


class MultiTalkError(ValueError):
    """Base class for every input error the pack reports to the user."""


class CheckpointError(MultiTalkError):
    """A weights file is missing, unreadable, truncated or of the wrong kind."""


class AudioInputError(MultiTalkError):
    """An audio track is unreadable, empty, silent where it must not be, or mis-shaped."""


class SpeakerInputError(MultiTalkError):
    """Masks, boxes or speaker counts do not fit the image or the audio tracks."""


class GenerationInputError(MultiTalkError):
    """Sampler settings that cannot work (frame counts, steps, window sizes)."""


class EncoderInputError(MultiTalkError):
    """Text encoder, CLIP vision or VAE files or inputs of the wrong kind."""


class DatasetInputError(MultiTalkError):
    """Training clips or caches that cannot be used."""


class OutputPathError(MultiTalkError):
    """An output path that would overwrite an input, or a container or folder the pack cannot write."""


class DubbingInputError(MultiTalkError):
    """Source videos, prompt or image timelines, or dubbing masks that cannot be used."""
