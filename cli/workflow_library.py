"""The shipped workflows, each described once; `python -m comfyui_multitalk workflows` writes
workflows/<name>.json (UI, with <name>.jpg for the template browser) and workflows/api/<name>_api.json
(API) from these descriptions.

Node ids are the same in every workflow (1 reference image, 2-4 voices, 10-14 loaders,
20 audio, 21 speakers, 22-24 prompt and CLIP, 30 sampler, 40-43 outputs), so `--set 30.steps=20`
means the same thing everywhere.
"""
from __future__ import annotations

from .workflow_graph import Node, Note, Out, Workflow

MODEL_FILES = {  # names as ComfyUI's model folders usually hold them
    "dit": "wan2.1_i2v_480p_14B_fp16.safetensors",
    "multitalk": "multitalk.safetensors",
    "infinitetalk": "infinitetalk.safetensors",
    "wav2vec": "wav2vec2-chinese-base_fp16.safetensors",
    "t5": "umt5_xxl_fp8_e4m3fn_scaled.safetensors",
    "clip": "clip_vision_h.safetensors",
    "vae": "wan_2.1_vae.safetensors",
}
MODELS_NOTE = (
    "\n\n**Models** (ComfyUI/models/...): `diffusion_models/{dit}`, `model_patches/{audio}`, "
    "`audio_encoders/{wav2vec}`, `text_encoders/{t5}`, `clip_vision/{clip}`, `vae/{vae}`. "
    "Missing ones are listed with their download links when the workflow opens."
)


def _models_note(audio: str) -> str:
    return MODELS_NOTE.format(audio=MODEL_FILES[audio], **MODEL_FILES)


def _voices(files: list[str]) -> list[Node]:
    return [Node(2 + k, "LoadAudio", f"Speaker {k + 1} voice", 0, 480 + 140 * k, {"audio": name}, "Inputs")
            for k, name in enumerate(files)]


def _audio_encode(count: int, timeline: str, routing: str = "lrope") -> Node:
    inputs = {"wav2vec": Out(10), "timeline_mode": timeline, "routing_mode": routing}
    inputs.update({f"audio_{k + 1}": Out(2 + k) for k in range(count)})
    return Node(20, "MultiTalkAudioEncode", "Audio", 2, 60, inputs, "Audio and speakers")


def _speakers(masks: dict | None = None) -> Node:
    inputs = {"image": Out(1, "IMAGE"), "audio": Out(20, "audio_features"), "resolution": "480p", **(masks or {})}
    return Node(21, "MultiTalkSpeakers", "Speakers", 2, 560, inputs, "Audio and speakers")


def _pack_loaders(audio_weights: str, native: bool = False) -> list[Node]:
    nodes = [
        Node(10, "MultiTalkWav2VecLoader", "wav2vec2", 1, 60, {"model": MODEL_FILES["wav2vec"]}, "Models"),
        Node(11, "MultiTalkModelLoader", "MultiTalk model", 1, 230,
             {"model": MODEL_FILES["dit"], "audio_weights": MODEL_FILES[audio_weights]}, "Models"),
    ]
    if native:
        return nodes + [
            Node(12, "CLIPLoader", "Load CLIP (umt5)", 1, 480, {"clip_name": MODEL_FILES["t5"], "type": "wan"},
                 "Models"),
            Node(13, "CLIPVisionLoader", "Load CLIP Vision", 1, 640, {"clip_name": MODEL_FILES["clip"]}, "Models"),
            Node(14, "VAELoader", "Load VAE", 1, 760, {"vae_name": MODEL_FILES["vae"]}, "Models"),
        ]
    return nodes + [
        Node(12, "MultiTalkTextEncoderLoader", "Text encoder", 1, 480, {"text_encoder": MODEL_FILES["t5"]}, "Models"),
        Node(13, "MultiTalkClipVisionLoader", "CLIP vision", 1, 680, {"clip_vision": MODEL_FILES["clip"]}, "Models"),
        Node(14, "MultiTalkVAELoader", "VAE", 1, 860, {"vae": MODEL_FILES["vae"]}, "Models"),
    ]


def _prompt_and_clip(prompt: str, native: bool = False) -> list[Node]:
    group = "Prompt and image features"
    if native:
        from ..models.encoders.text_encoder import DEFAULT_NEGATIVE_PROMPT

        return [
            Node(22, "CLIPTextEncode", "Positive prompt", 2, 1120, {"text": prompt, "clip": Out(12)}, group),
            Node(24, "CLIPTextEncode", "Negative prompt", 2, 1340, {"text": DEFAULT_NEGATIVE_PROMPT, "clip": Out(12)},
                 group),
            Node(23, "CLIPVisionEncode", "CLIP Vision Encode", 2, 1560,
                 {"clip_vision": Out(13), "image": Out(21, "image"), "crop": "none"}, group),
        ]
    return [
        Node(22, "MultiTalkTextEncode", "Prompt", 2, 1120, {"t5": Out(12), "positive": prompt}, group),
        Node(23, "MultiTalkClipVisionEncode", "CLIP image", 2, 1460,
             {"clip_vision": Out(13), "image": Out(21, "image"), "crop": "none"}, group),
    ]


def _sampler(native: bool = False, **settings) -> Node:
    inputs = {"model": Out(11), "positive": Out(22, 0), "negative": Out(24 if native else 22, 0 if native else 1),
              "clip_vision_output": Out(23), "vae": Out(14), "image": Out(21, "image"),
              "audio": Out(20, "audio_features"), "speakers": Out(21, "speakers"), "clip_vision": Out(13),
              "seed": 42, **settings}
    return Node(30, "MultiTalkSampler", "Sampler", 3, 60, inputs, "Generate")


def _outputs(prefix: str) -> list[Node]:
    return [
        Node(40, "CreateVideo", "Video", 4, 60,
             {"images": Out(30, "frames"), "audio": Out(30, "audio"), "fps": Out(30, "fps")}, "Output"),
        Node(41, "SaveVideo", "Save video", 4, 220,
             {"video": Out(40), "filename_prefix": f"MultiTalk/{prefix}/video", "format": "mp4", "codec": "h264"},
             "Output"),
        Node(42, "SaveImage", "Speaker preview", 4, 420,
             {"images": Out(21, "preview"), "filename_prefix": f"MultiTalk/{prefix}/speakers"}, "Output"),
        Node(43, "SaveImage", "Timeline", 4, 820,
             {"images": Out(20, "timeline"), "filename_prefix": f"MultiTalk/{prefix}/timeline"}, "Output"),
    ]


def single_speaker() -> Workflow:
    nodes = [Node(1, "LoadImage", "Reference image", 0, 60, {"image": "portrait.png"}, "Inputs"),
             *_voices(["speech.wav"]), *_pack_loaders("multitalk"), _audio_encode(1, "parallel"), _speakers(),
             *_prompt_and_clip("A person talks to the camera in a bright room, natural expressions."),
             _sampler(), *_outputs("single_speaker")]
    note = ("**Start here (one speaker).**\n1. *Reference image*: pick the picture of the person.\n"
            "2. *Speaker 1 voice*: pick the recording; the video lasts as long as it.\n3. Press **Run**."
            + _models_note("multitalk"))
    return Workflow("multitalk_single_speaker", nodes, [Note(note, 0, 0)])


def two_speakers() -> Workflow:
    masks = {"mask_1": Out(1, "MASK"), "mask_2": Out(5, "MASK")}
    nodes = [Node(1, "LoadImage", "Reference image", 0, 60, {"image": "two_speakers.png"}, "Inputs"),
             Node(5, "LoadImage", "Speaker 2 mask", 0, 300, {"image": "two_speakers.png"}, "Inputs"),
             *_voices(["speaker1.wav", "speaker2.wav"]), *_pack_loaders("multitalk"),
             _audio_encode(2, "parallel"), _speakers(masks),
             *_prompt_and_clip("Two people sit side by side and talk to each other, natural expressions."),
             _sampler(), *_outputs("two_speakers")]
    note = ("**Start here: paint who is who.**\n1. Pick your picture in *Reference image* and in *Speaker 2 mask* "
            "(the same picture).\n2. Right-click *Reference image* > Open in MaskEditor, paint speaker 1 (track 1) "
            "and save; paint speaker 2 on *Speaker 2 mask* the same way.\n3. Pick each speaker's recording in "
            "the voice nodes, check the regions on *Speakers*, press **Run**.\nTracks play in parallel: give "
            "each recording silence where the other talks, or set timeline_mode to sequential."
            + _models_note("multitalk"))
    return Workflow("multitalk_two_speakers", nodes, [Note(note, 0, 0)])


def three_speakers() -> Workflow:
    nodes = [Node(1, "LoadImage", "Reference image", 0, 60, {"image": "three_speakers.png"}, "Inputs"),
             *_voices(["speaker1.wav", "speaker2.wav", "speaker3.wav"]), *_pack_loaders("multitalk"),
             _audio_encode(3, "sequential", routing="masked"), _speakers(),
             *_prompt_and_clip("Three friends sit at a table and take turns talking, natural expressions."),
             _sampler(routing="masked"), *_outputs("three_speakers")]
    note = ("**Start here (three speakers).**\n1. *Reference image*: pick the picture; people are found left to "
            "right (track 1 drives the leftmost).\n2. Pick the three recordings; they play one after another.\n"
            "3. Check or move the regions on *Speakers*, then press **Run**.\nThe released weights were trained "
            "with one and two speakers; 'masked' routing reuses the one-speaker path per person (docs/model.md)."
            + _models_note("multitalk"))
    return Workflow("multitalk_three_speakers", nodes, [Note(note, 0, 0)])


def long_video() -> Workflow:
    nodes = [Node(1, "LoadImage", "Reference image", 0, 60, {"image": "portrait.png"}, "Inputs"),
             *_voices(["long_speech.wav"]), *_pack_loaders("infinitetalk"), _audio_encode(1, "parallel"), _speakers(),
             *_prompt_and_clip("A person gives a long talk to the camera, natural expressions and gestures."),
             _sampler(mode="infinitetalk"), *_outputs("long_video")]
    note = ("**Start here (long video, InfiniteTalk).**\n1. *Reference image*: pick the picture.\n2. *Speaker 1 "
            "voice*: pick the recording, any length.\n3. Press **Run**.\n81-frame windows, each re-anchored on "
            "the picture and continuing from the last 9 frames. Frames are held in memory for Create Video (about "
            "7 GB per minute at 480p); for many minutes set the sampler's stream_to to an .mp4 path."
            + _models_note("infinitetalk"))
    return Workflow("multitalk_long_video", nodes, [Note(note, 0, 0)])


def native_loaders() -> Workflow:
    nodes = [Node(1, "LoadImage", "Reference image", 0, 60, {"image": "two_speakers.png"}, "Inputs"),
             *_voices(["speaker1.wav", "speaker2.wav"]), *_pack_loaders("multitalk", native=True),
             _audio_encode(2, "parallel"), _speakers(),
             *_prompt_and_clip("Two people sit side by side and talk to each other, natural expressions.",
                               native=True),
             _sampler(native=True), *_outputs("native_loaders")]
    note = ("**Start here (ComfyUI's own loaders).**\n1. *Reference image*: pick the picture of the two people.\n"
            "2. Pick each speaker's recording.\n3. Check the regions on *Speakers* (found automatically, left and "
            "right), press **Run**.\nText encoder (Load CLIP, type wan), CLIP vision (crop none, as the official "
            "pipeline) and VAE are ComfyUI's loaders; runs inside ComfyUI only." + _models_note("multitalk"))
    return Workflow("multitalk_native_loaders", nodes, [Note(note, 0, 0)])


def train_audio_adapter() -> Workflow:
    nodes = [*_pack_loaders("multitalk"),
             Node(20, "MultiTalkPrepareDataset", "Prepare dataset", 2, 60,
                  {"vae": Out(14), "wav2vec": Out(10), "t5": Out(12), "clip_vision": Out(13),
                   "clips_folder": "training_clips", "cache_folder": "training_cache"}, "Train"),
             Node(30, "MultiTalkTrainAudioAdapter", "Train audio adapter", 3, 60,
                  {"model": Out(11), "cache_folder": Out(20, "cache_folder"), "output_name": "my_multitalk_adapter"},
                  "Train"),
             Node(43, "SaveImage", "Loss curve", 4, 60,
                  {"images": Out(30, "loss_curve"), "filename_prefix": "MultiTalk/training/loss"}, "Output")]
    note = ("**Start here (train the audio adapter).**\n1. Put your clips in `training_clips/`: clip.mp4 (+ "
            "clip.txt caption, + clip.speaker1.wav ... for several speakers, or one mix with clip.rttm, else the "
            "video's own sound; videos without speech are image-to-video data), see docs/training.md.\n2. Set "
            "*Prepare dataset*'s clips_folder to that folder and press **Run**.\nThe clips are split at shot cuts "
            "and encoded once into `training_cache/`; windows with no visible face or with sound off the mouths "
            "are left out (see the summary). Only the audio layers train, the backbone stays frozen; windows also "
            "train as long-video continuations. The result lands in models/model_patches and loads in MultiTalk "
            "Model Loader like multitalk.safetensors; the log (<name>.log.csv) sits beside it. Interrupt any "
            "time: `resume` continues from the last saved state. For several GPUs use `torchrun ... -m "
            "comfyui_multitalk train`. " + _models_note("multitalk"))
    return Workflow("multitalk_train_audio_adapter", nodes, [Note(note, 0, 0)])


WORKFLOWS = (single_speaker, two_speakers, three_speakers, long_video, native_loaders, train_audio_adapter)
