"""The sampler's dubbing and timeline inputs -> the window conditions of the generator."""
from __future__ import annotations

from typing import Optional

from ..models.dubbing.conditions import TimelineConditions, length_notes
from ..models.dubbing.masking import DubMasking
from ..models.errors import GenerationInputError
from ..models.sampling.generate import GenerationInputs
from ..models.sampling.settings import SamplerSettings


def timeline_inputs() -> dict:
    """Optional sampler sockets (no widgets: their settings live on their own nodes)."""
    tip = lambda text: {"tooltip": text}  # noqa: E731
    return {
        "source_video": ("MULTITALK_SOURCE", tip(
            "Dubbing: MultiTalk Source Video. Each window is anchored (y and CLIP) on the source frame at its "
            "start, as the official InfiniteTalk; needs mode infinitetalk and clip_vision.")),
        "dub_mask": ("MULTITALK_DUB_MASK", tip(
            "Masked dubbing (with source_video): regenerate only the speakers' heads, keep every other pixel.")),
        "prompt_timeline": ("MULTITALK_PROMPTS", tip(
            "Prompts that change along the video (MultiTalk Prompt Timeline); replaces positive.")),
        "image_timeline": ("MULTITALK_IMAGES", tip(
            "Reference images that change along the video (MultiTalk Image Timeline); needs clip_vision.")),
    }


def window_conditions(inputs: GenerationInputs, speakers, settings: SamplerSettings, audio, clip_vision=None,
                      source_video=None, dub_mask=None, prompt_timeline=None,
                      image_timeline=None) -> Optional[TimelineConditions]:
    """None when nothing but the plain inputs is connected; checks run before any model work."""
    if source_video is None and dub_mask is None and prompt_timeline is None and image_timeline is None:
        return None
    if dub_mask is not None and source_video is None:
        raise GenerationInputError("dub_mask is connected without a source_video: masked dubbing keeps the "
                                   "source's pixels, so connect MultiTalk Source Video too.")
    if source_video is not None:
        if float(audio.fps) != source_video.fps:
            raise GenerationInputError(f"The audio features run at {audio.fps:g} fps but a source video is put on the "
                                       f"{source_video.fps:g} fps timeline: set MultiTalk Audio Encode's fps to 25.")
        if settings.mode != "infinitetalk":
            raise GenerationInputError(f"Dubbing a source video needs mode infinitetalk (every window anchored on "
                                       f"the source frame at its start), not '{settings.mode}'.")
        size = (source_video.height, source_video.width)
        if size != (speakers.height, speakers.width):
            raise GenerationInputError(f"The source video is bucketed to {size[1]}x{size[0]} but the speaker layout "
                                       f"to {speakers.width}x{speakers.height}: give MultiTalk Source Video and "
                                       "MultiTalk Speakers the same resolution, and Speakers the source's first_frame.")
    if (source_video is not None or image_timeline is not None) and clip_vision is None:
        raise GenerationInputError("Windows anchored on source frames or timeline images need their own CLIP "
                                   "features: connect clip_vision to the sampler.")
    masking = DubMasking(dub_mask, source_video) if dub_mask is not None else None
    conditions = TimelineConditions(inputs.reference, inputs.clip_features, inputs.positive, speakers,
                                    source=source_video, prompts=prompt_timeline, images=image_timeline,
                                    masking=masking)
    if source_video is not None:
        conditions.notes.extend(length_notes(source_video, audio.num_frames))
    return conditions
