"""The shipped dubbing and timeline workflows, described once like those of workflow_library.

Same node ids as every workflow (2-3 voices, 10-14 loaders, 20 audio, 21 speakers, 22-23
prompt and CLIP, 30 sampler, 40-43 outputs), plus 6 the source video (LoadVideo), 25 the source
frames, 26 the dubbing mask, 27 the prompt timeline.
"""
from __future__ import annotations

from .workflow_graph import Node, Note, Out, Workflow
from .workflow_library import _audio_encode, _models_note, _outputs, _pack_loaders, _prompt_and_clip, _sampler, _voices

DUB_NOTE = ("The source video gives identity, camera, pose and scene; the new voice drives the mouths. Every 81-frame "
            "window is anchored on the source frame at its start (InfiniteTalk mode, 9 motion frames); the video lasts "
            "as long as the voice (the source's last frame repeats if the voice is longer). To re-animate with the "
            "video's own sound, link *Source frames*' soundtrack to the Audio node instead of the voice. ")


def _source(split_shots: bool) -> list[Node]:
    return [Node(6, "LoadVideo", "Source video", 0, 60, {"file": "source.mp4"}, "Inputs"),
            Node(25, "MultiTalkSourceVideo", "Source frames", 1, 1080,
                 {"video": Out(6), "resolution": "480p", "split_shots": split_shots}, "Source")]


def _speakers() -> Node:
    inputs = {"image": Out(25, "first_frame"), "audio": Out(20, "audio_features"), "resolution": "480p"}
    return Node(21, "MultiTalkSpeakers", "Speakers", 2, 560, inputs, "Audio and speakers")


def _dub(name: str, voices: list[str], prompt: str, note: str, **sampler) -> Workflow:
    nodes = [*_source(split_shots=True), *_voices(voices), *_pack_loaders("infinitetalk"),
             _audio_encode(len(voices), "parallel"), _speakers(), *_prompt_and_clip(prompt),
             _sampler(mode="infinitetalk", source_video=Out(25, "source"), **sampler), *_outputs(name)]
    return Workflow(f"multitalk_{name}", nodes, [Note(note + _models_note("infinitetalk"), 0, 900)])


def dubbing() -> Workflow:
    return _dub("dubbing", ["new_voice.wav"], "A person talks to the camera, natural expressions.",
                "**Dubbing, one speaker.** Put `source.mp4` and `new_voice.wav` in ComfyUI/input. " + DUB_NOTE
                + "Shot cuts split the job into independent segments (Source frames: split_shots). ")


def dubbing_two_speakers() -> Workflow:
    return _dub("dubbing_two_speakers", ["speaker1.wav", "speaker2.wav"],
                "Two people sit side by side and talk to each other, natural expressions.",
                "**Dubbing, two speakers.** `source.mp4` with two people, one new voice each (track 1 = the person "
                "on the left, placed again on the first frame of every shot; paint masks on a frame for Speakers to "
                "pin them). " + DUB_NOTE)


def dubbing_masked() -> Workflow:
    workflow = _dub("dubbing_masked", ["new_voice.wav"], "A person talks to the camera, natural expressions.",
                    "**Masked dubbing.** Only the speaker's head is regenerated: every pixel farther than the "
                    "feather from the tracked head region (face + margin) stays the source's, so hands, bystanders "
                    "and background are untouched. Jaw and head motion are bounded by the margin. " + DUB_NOTE,
                    dub_mask=Out(26))
    workflow.nodes.append(Node(26, "MultiTalkDubbingMask", "Face mask", 1, 1440, {"margin": 0.5, "feather": 16},
                               "Source"))
    return workflow


def prompt_timeline() -> Workflow:
    first = "A woman talks calmly to the camera in a bright room."
    timeline = f"0: {first}\n6.5: The woman laughs and leans back, then talks on."
    nodes = [Node(1, "LoadImage", "Reference image", 0, 60, {"image": "portrait.png"}, "Inputs"),
             *_voices(["long_speech.wav"]), *_pack_loaders("infinitetalk"), _audio_encode(1, "parallel"),
             Node(21, "MultiTalkSpeakers", "Speakers", 2, 560,
                  {"image": Out(1, "IMAGE"), "audio": Out(20, "audio_features"), "resolution": "480p"},
                  "Audio and speakers"),
             *_prompt_and_clip(first),
             Node(27, "MultiTalkPromptTimeline", "Prompt timeline", 2, 1620, {"timeline": timeline, "t5": Out(12)},
                  "Prompt and image features"),
             _sampler(mode="infinitetalk", prompt_timeline=Out(27, "prompt_timeline")), *_outputs("prompt_timeline")]
    note = ("**Prompt timeline.** One long talk whose prompt changes at 6.5 s: each window uses the prompt active "
            "at its start (switch: blend mixes them across the change). Each prompt is encoded once; the timeline "
            "replaces the Prompt node's positive text. " + _models_note("infinitetalk"))
    return Workflow("multitalk_prompt_timeline", nodes, [Note(note, 0, 700)])


DUBBING_WORKFLOWS = (dubbing, dubbing_two_speakers, dubbing_masked, prompt_timeline)
