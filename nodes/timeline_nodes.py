"""Timeline nodes: prompts and reference images that change along a long video."""
from __future__ import annotations

from ..models.dubbing.images import build_image_timeline
from ..models.dubbing.prompts import SWITCH_MODES, PromptTimeline, build_prompt_timeline
from ..models.dubbing.timing import parse_starts, parse_timed_entries
from .sampler_inputs import conditioning_tensor

CATEGORY = "MultiTalk/timelines"
MAX_ENTRIES = 6
_PROMPT_EXAMPLE = "0: two people talk calmly | 6.5: the woman laughs"


def _report(timeline: PromptTimeline) -> str:
    lines = []
    for start, index in zip(timeline.starts, timeline.prompts):
        lines.append(f"frame {start} ({start / 25:.2f} s): {timeline.texts[index]}")
    return "\n".join(lines + [f"{len(timeline.embeddings)} distinct prompt(s), each encoded once; switch: "
                              f"{timeline.switch}"])


class MultiTalkPromptTimeline:
    DESCRIPTION = ("Prompts that change along the video: 'seconds: prompt' entries separated by | or new lines. "
                   "Each window of the sampler uses the prompt active at its start (or a blend across a change). "
                   "Each distinct prompt is encoded once. Replaces the sampler's positive prompt.")
    CATEGORY = CATEGORY
    FUNCTION = "build"
    RETURN_TYPES = ("MULTITALK_PROMPTS", "STRING")
    RETURN_NAMES = ("prompt_timeline", "report")
    OUTPUT_TOOLTIPS = ("For the sampler's prompt_timeline input.", "Each entry's first frame and prompt.")

    @classmethod
    def INPUT_TYPES(cls):
        optional = {"t5": ("MULTITALK_T5", {"tooltip": "The text encoder (MultiTalk Text Encoder Loader) that "
                                                       "encodes the entries' prompts."})}
        optional.update({f"conditioning_{k}": ("CONDITIONING", {"tooltip": (
            f"Without t5: the pre-encoded prompt of entry {k} (its text is then just a label).")})
            for k in range(1, MAX_ENTRIES + 1)})
        return {
            "required": {
                "timeline": ("STRING", {"multiline": True, "default": _PROMPT_EXAMPLE, "tooltip": (
                    "'seconds: prompt' entries, separated by | or new lines; the first starts at 0.")}),
                "switch": (list(SWITCH_MODES), {"default": SWITCH_MODES[0], "tooltip": (
                    "window_start: a window uses the prompt active at its first frame. blend: a window that "
                    "spans a change mixes the prompts by how many of its frames each covers.")}),
            },
            "optional": optional,
        }

    def build(self, timeline, switch, t5=None, **conditionings):
        entries = parse_timed_entries(timeline, "prompt timeline")
        encoded = [conditioning_tensor(conditionings[f"conditioning_{k}"], f"conditioning_{k}")
                   for k in range(1, MAX_ENTRIES + 1) if conditionings.get(f"conditioning_{k}") is not None]
        encode = None if t5 is None else (lambda text: conditioning_tensor(t5.conditioning(text), "prompt"))
        result = build_prompt_timeline(entries, switch, encode, encoded)
        return (result, _report(result))


class MultiTalkImageTimeline:
    DESCRIPTION = ("Reference images that change along the video (scene or outfit changes): each image from its "
                   "start time on. Windows re-anchor on the active image; a change of image starts a fresh window "
                   "at that frame, with no motion carried across.")
    CATEGORY = CATEGORY
    FUNCTION = "build"
    RETURN_TYPES = ("MULTITALK_IMAGES", "IMAGE")
    RETURN_NAMES = ("image_timeline", "first_image")
    OUTPUT_TOOLTIPS = ("For the sampler's image_timeline input.", "image_1: for MultiTalk Speakers and CLIP.")

    @classmethod
    def INPUT_TYPES(cls):
        optional = {f"image_{k}": ("IMAGE", {"tooltip": f"Image {k}, from its start time on."})
                    for k in range(2, MAX_ENTRIES + 1)}
        return {
            "required": {
                "image_1": ("IMAGE", {"tooltip": "The first image, from 0 s."}),
                "starts": ("STRING", {"default": "0", "tooltip": (
                    "Start second of each connected image, in order, e.g. '0, 6.5, 12' (the first is 0).")}),
            },
            "optional": optional,
        }

    def build(self, image_1, starts, **more):
        images = [image_1] + [more[f"image_{k}"] for k in range(2, MAX_ENTRIES + 1)
                              if more.get(f"image_{k}") is not None]
        timeline = build_image_timeline(images, parse_starts(starts, len(images), "image timeline"))
        return (timeline, image_1[:1])


NODE_CLASS_MAPPINGS = {"MultiTalkPromptTimeline": MultiTalkPromptTimeline,
                       "MultiTalkImageTimeline": MultiTalkImageTimeline}
NODE_DISPLAY_NAME_MAPPINGS = {"MultiTalkPromptTimeline": "MultiTalk Prompt Timeline",
                              "MultiTalkImageTimeline": "MultiTalk Image Timeline"}
