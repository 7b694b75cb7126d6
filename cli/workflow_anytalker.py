"""The shipped AnyTalker workflows, described once like those of workflow_library.

Same node ids as every workflow (1 reference image, 2-4 voices, 10-14 loaders, 20 audio, 21
speakers, 22-23 prompt and CLIP, 30 sampler, 40-43 outputs) and the same nodes: the loaders read
the family off the files (AnyTalker checkpoint, wav2vec2-base-960h), Speakers places one face per
track, and the sampler runs AnyTalker's official one-pass generation.
"""
from __future__ import annotations

from .workflow_graph import Node, Note, Out, Workflow
from .workflow_library import MODEL_FILES, _audio_encode, _outputs, _pack_loaders, _prompt_and_clip, _sampler, _voices

ANYTALKER_FILES = {
    "dit": "1_3B-single-v1.pth",
    "wav2vec": "wav2vec2-base-960h/model.safetensors",
}
ANYTALKER_NOTE = (
    "**Models** (ComfyUI/models/...): `diffusion_models/{dit}` (AnyTalker, from zzz66/AnyTalker-1.3B; "
    "`14B-multi-v1.pth` for the 14B multi-person model, 80 GB VRAM), `audio_encoders/{wav2vec}` (the whole "
    "facebook/wav2vec2-base-960h folder), `text_encoders/{t5}`, `clip_vision/{clip}`, `vae/{vae}` (the Wan2.1 "
    "encoders). One pass over the whole audio, as the official: for long audio set the sampler's mode to "
    "infinitetalk or multitalk (windows, the pack's extension; see docs/anytalker.md)."
).format(t5=MODEL_FILES["t5"], clip=MODEL_FILES["clip"], vae=MODEL_FILES["vae"], **ANYTALKER_FILES)
OFFICIAL_SAMPLING = dict(mode="single", sampler="unipc", steps=40, text_scale=4.5, shift=0.0, color_correction=0.0,
                         seed=44)


def _loaders() -> list[Node]:
    nodes = _pack_loaders("multitalk")
    nodes[0].inputs["model"] = ANYTALKER_FILES["wav2vec"]
    nodes[1].inputs.update(model=ANYTALKER_FILES["dit"], audio_weights="none")
    nodes[1].title = "AnyTalker model"
    return nodes


def _audio(count: int, timeline: str) -> Node:
    node = _audio_encode(count, timeline, routing="masked")  # routing: MultiTalk only, unused here
    node.inputs.update(normalize_loudness=False, fps=24.0)  # as the official: no loudness change, 24 fps
    return node


def _speakers() -> Node:
    inputs = {"image": Out(1, "IMAGE"), "audio": Out(20, "audio_features"), "resolution": "480p"}
    return Node(21, "MultiTalkSpeakers", "Faces", 2, 560, inputs, "Audio and speakers")


def _anytalker(name: str, image: str, voices: list[str], timeline: str, prompt: str, note: str) -> Workflow:
    nodes = [Node(1, "LoadImage", "Reference image", 0, 60, {"image": image}, "Inputs"), *_voices(voices),
             *_loaders(), _audio(len(voices), timeline), _speakers(), *_prompt_and_clip(prompt),
             _sampler(**OFFICIAL_SAMPLING), *_outputs(name)]
    start = (f"**Start here (AnyTalker, {len(voices)} speakers).**\n1. *Reference image*: pick the picture of the "
             "people.\n2. The voices: one recording per speaker (track 1 = the leftmost face).\n3. Press **Run**."
             "\n\n")
    # The read-me stays short so the first screen shows the picture input; the details go below.
    return Workflow(name, nodes, [Note(start, 0, 0), Note(note + ANYTALKER_NOTE, 0, 5000)])


def anytalker_two_speakers() -> Workflow:
    return _anytalker(
        "anytalker_two_speakers", "two_speakers.png", ["speaker1.wav", "speaker2.wav"], "parallel",
        "Two people sit side by side and talk to each other, natural expressions.",
        "**AnyTalker, two speakers.** Faces are found automatically: the two largest, track 1 = the leftmost "
        "(as the official). To choose them, paint each face on a copy of the picture into *Faces*' mask_1 / "
        "mask_2, or type one box per line. Tracks play in parallel (the official pad mode): give each speaker's "
        "recording with silence where the other talks. The 1.3B model was trained on single-person clips only; "
        "the 14B model on multi-person ones. ")


def anytalker_three_speakers() -> Workflow:
    return _anytalker(
        "anytalker_three_speakers", "three_speakers.png", ["speaker1.wav", "speaker2.wav", "speaker3.wav"],
        "sequential", "Three friends sit at a table and take turns talking, natural expressions.",
        "**AnyTalker, three speakers.** The three largest faces, left to right, drive tracks 1-3 (the official app's "
        "Person 1 (leftmost) to 3 (rightmost)). Tracks play one after another (the official concat mode). ")


ANYTALKER_WORKFLOWS = (anytalker_two_speakers, anytalker_three_speakers)
