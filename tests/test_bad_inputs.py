"""Bad input, as users give it: every case gets the pack's typed error (or its documented fallback)
with a message that names the bad value and says what to do, and nothing the user gave changes:
input files stay byte-identical, input tensors keep their values.

Model files and the command line have their own cases at the end of this module."""
from __future__ import annotations

import hashlib
import json
import math
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pytest
import torch

from comfyui_multitalk.models.errors import (AudioInputError, GenerationInputError, MultiTalkError,
                                              SpeakerInputError)
from comfyui_multitalk.models.sampling.settings import SamplerSettings, validate_settings
from comfyui_multitalk.nodes.audio_nodes import MultiTalkAudioEncode, MultiTalkLoadAudio, MultiTalkWav2VecLoader
from comfyui_multitalk.nodes.speaker_nodes import MultiTalkSpeakers

# Words that tell the user what to do; every message must hold at least one.
ADVICE = ("use", "give", "choose", "set", "connect", "write", "make", "paint", "load", "put", "check",
          "convert", "re-export", "download", "crop", "remove", "install", "rerun", "run", "open", "type",
          "switch", "pass", "keep", "rename", "move", "lower", "raise", "export", "try", "disconnect")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@contextmanager
def untouched(*roots: Path) -> Iterator[None]:
    """Every file under `roots` keeps its bytes; no file is added or removed."""
    before = {p: _digest(p) for root in roots for p in sorted(Path(root).rglob("*")) if p.is_file()}
    yield
    after = {p: _digest(p) for root in roots for p in sorted(Path(root).rglob("*")) if p.is_file()}
    assert after == before, "an input file was changed, added or removed"


def assert_refused(call: Callable[[], object], error: type, match: str) -> str:
    with pytest.raises(error, match=match) as caught:
        call()
    message = str(caught.value)
    assert any(word in message.lower() for word in ADVICE), f"the message says what is wrong, not what to do: {message}"
    return message


def image(height: int = 96, width: int = 160, seed: int = 0) -> torch.Tensor:
    return torch.rand(1, height, width, 3, generator=torch.Generator().manual_seed(seed))


def place(picture: torch.Tensor, speakers: int = 2, **kwargs):
    given = picture.clone()
    try:
        return MultiTalkSpeakers().place(picture, speakers, resolution=kwargs.pop("resolution", "120p"), **kwargs)
    finally:
        assert torch.equal(picture, given) or (torch.isnan(given).any() and picture.shape == given.shape)


# --- images and masks ------------------------------------------------------------------------

IMAGE_CASES = {
    "one_pixel_image": (lambda: place(torch.rand(1, 1, 1, 3), 1), "1x1 pixels.*at least 64"),
    "tiny_image": (lambda: place(torch.rand(1, 40, 500, 3), 1), "500x40 pixels.*at least 64"),
    "empty_image": (lambda: place(torch.rand(1, 0, 0, 3), 1), "0x0 pixels"),
    "nan_image": (lambda: place(torch.full((1, 96, 96, 3), float("nan")), 1), "NaN or infinite"),
    "two_channel_image": (lambda: place(torch.rand(1, 96, 96, 2), 1), r"shape \(96, 96, 2\)"),
    "unknown_resolution": (lambda: place(image(), 1, resolution="1080p"), "Unknown resolution '1080p'"),
    "unknown_overlap_rule": (lambda: place(image(), 2, boxes="0,0,60,90\n80,0,60,90", overlap="merge"),
                             "Unknown overlap rule 'merge'"),
    "box_not_four_numbers": (lambda: place(image(), 2, boxes="10, 10, 40"), "Box line 1 reads '10, 10, 40'"),
    "box_words": (lambda: place(image(), 2, boxes="left half"), "Box line 1 reads 'left half'"),
    "box_zero_width": (lambda: place(image(), 2, boxes="10, 10, 0, 40\nauto"), "width or height <= 0"),
    "box_outside_image": (lambda: place(image(), 2, boxes="900, 900, 40, 40\nauto"), "outside the 160x96"),
    "more_box_lines_than_speakers": (lambda: place(image(), 2, boxes="auto\nauto\nauto"), "3 box lines"),
    "empty_mask": (lambda: place(image(), 2, mask_1=torch.zeros(1, 96, 160)), "mask_1 is empty"),
    "faint_mask": (lambda: place(image(), 2, mask_1=torch.full((1, 96, 160), 0.2)), "no pixel >= 0.5"),
    "five_dim_mask": (lambda: place(image(), 2, mask_1=torch.ones(1, 1, 1, 96, 160)), "mask_1 has shape"),
    "mask_beyond_speaker_count": (lambda: place(image(), 2, mask_3=torch.ones(1, 96, 160)), "mask_3 is connected"),
    "negative_speaker_count": (lambda: place(image(), -1), "num_speakers is -1"),
    "too_many_speakers": (lambda: place(image(), 99), "99 speakers requested"),
}


@pytest.mark.parametrize("case", IMAGE_CASES)
def test_bad_images_and_masks(case):
    call, match = IMAGE_CASES[case]
    assert_refused(call, SpeakerInputError, match)


def test_count_mismatch_between_node_and_audio():
    class TwoTracks:
        features = [torch.zeros(4, 12, 768)] * 2

    assert_refused(lambda: place(image(), 3, audio=TwoTracks()), SpeakerInputError, "num_speakers is 3 but the audio")


def test_extreme_aspect_ratio_gets_a_note_not_an_error():
    result = place(torch.rand(1, 100, 2000, 3), 1)
    notes = result["ui"]["multitalk_notes"]
    assert any("keeps only" in note and "2000x100" in note for note in notes)
    layout = result["result"][0]
    assert (layout.width, layout.height) == (304, 80)  # the widest 120p bucket, 1216x320 / 4


# --- sampler settings ------------------------------------------------------------------------

SETTINGS_CASES = {
    "negative_seed": (dict(seed=-1), "seed is -1"),
    "seed_beyond_64_bits": (dict(seed=2**64), "seed is 18446744073709551616"),
    "float_seed": (dict(seed=1.5), "seed is 1.5"),
    "unknown_mode": (dict(mode="endless"), "Unknown long-video mode 'endless'"),
    "unknown_sampler": (dict(solver="ddim"), "Unknown sampler 'ddim'"),
    "unknown_routing": (dict(routing="magic"), "Unknown speaker routing 'magic'"),
    "zero_steps": (dict(steps=0), "steps is 0"),
    "window_not_4n_plus_1": (dict(window=80), "Window length 80"),
    "motion_as_long_as_window": (dict(window=33, motion_frames=33), "motion_frames is 33"),
    "colour_beyond_one": (dict(colour_strength=1.5), "color_correction is 1.5"),
    "nan_text_scale": (dict(text_scale=math.nan), "text_scale is nan"),
    "negative_audio_scale": (dict(audio_scale=-2.0), "audio_scale is -2.0"),
    "negative_shift": (dict(shift=-1.0), "shift is -1.0"),
    "negative_max_frames": (dict(max_frames=-5), "max_frames is -5"),
}


@pytest.mark.parametrize("case", SETTINGS_CASES)
def test_bad_sampler_settings(case):
    overrides, match = SETTINGS_CASES[case]
    assert_refused(lambda: validate_settings(SamplerSettings(**overrides)), GenerationInputError, match)


def test_default_settings_are_valid():
    validate_settings(SamplerSettings())


def test_sampler_node_checks_settings_before_touching_the_model():
    from comfyui_multitalk.nodes.sampler_nodes import MultiTalkSampler

    class Untouchable:
        def __getattr__(self, name):
            raise AssertionError(f"the model was used ({name}) before the settings were checked")

    class Speakers:
        resolution = "480p"

    kwargs = dict(model=Untouchable(), positive=None, negative=None, clip_vision_output=None, vae=None, image=None,
                  audio=None, speakers=Speakers(), steps=4, shift=0.0, text_scale=5.0, audio_scale=4.0, seed=0,
                  sampler="euler", mode="multitalk", window_frames=81, motion_frames=0, color_correction=1.0,
                  max_frames=0, routing="lrope", apg=False)
    assert_refused(lambda: MultiTalkSampler().sample(**{**kwargs, "seed": -1}), GenerationInputError, "seed is -1")
    assert_refused(lambda: MultiTalkSampler().sample(**{**kwargs, "mode": "endless"}), GenerationInputError,
                   "Unknown long-video mode 'endless'")


# --- audio ------------------------------------------------------------------------------------

def _write_wav(path: Path, seconds: float = 0.5, rate: int = 16000) -> Path:
    import soundfile

    t = np.arange(int(seconds * rate)) / rate
    soundfile.write(str(path), (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), rate)
    return path


@pytest.fixture
def audio_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "audio"
    folder.mkdir()
    _write_wav(folder / "voice.wav")
    (folder / "notes.wav").write_text("these are not samples")
    _write_wav(folder / "empty.wav", seconds=0.0)
    (folder / "picture.mp3").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    (folder / "a_folder.wav").mkdir()
    return folder


FILE_CASES = {
    "missing_file": ("nowhere.wav", "does not exist"),
    "empty_path": ("", "No audio file given"),
    "text_named_wav": ("notes.wav", "notes.wav"),
    "zero_length_wav": ("empty.wav", "zero length|no samples"),
    "png_named_mp3": ("picture.mp3", "picture.mp3"),
    "folder_named_wav": ("a_folder.wav", "a_folder.wav"),
}


@pytest.mark.parametrize("case", FILE_CASES)
def test_bad_audio_files(case, audio_folder):
    name, match = FILE_CASES[case]
    path = str(audio_folder / name) if name else ""
    with untouched(audio_folder):
        assert_refused(lambda: MultiTalkLoadAudio().load(path), AudioInputError, match)


def _voice(seconds: float = 0.6, rate: int = 16000, value: float | None = None) -> dict:
    samples = torch.sin(torch.arange(int(seconds * rate)) / rate * 2 * math.pi * 200) * 0.3
    if value is not None:
        samples = torch.full_like(samples, value)
    return {"waveform": samples[None, None].float(), "sample_rate": rate}


def encode(**kwargs):
    arguments = dict(wav2vec=None, audio_1=_voice(), timeline_mode="parallel", normalize_loudness=True,
                     fps=25.0, routing_mode="lrope")
    arguments.update(kwargs)
    given = {k: v["waveform"].clone() for k, v in arguments.items() if isinstance(v, dict) and "waveform" in v}
    try:
        return MultiTalkAudioEncode().encode(**arguments)
    finally:
        for key, waveform in given.items():
            assert torch.equal(arguments[key]["waveform"], waveform) or torch.isnan(waveform).any()


ENCODE_CASES = {
    "not_an_audio_value": (dict(audio_1="voice.wav"), "not an AUDIO value"),
    "batch_of_clips": (dict(audio_1={"waveform": torch.zeros(2, 1, 800), "sample_rate": 16000}), "batch of 2"),
    "nan_samples": (dict(audio_1=_voice(value=math.nan)), "NaN or infinite"),
    "sample_rate_too_low": (dict(audio_1=_voice(rate=1000)), "1000 Hz"),
    "gap_in_tracks": (dict(audio_3=_voice()), "audio_3 is connected but audio_2 is not"),
    "trim_words": (dict(trim_starts="half"), "'half'"),
    "trim_negative": (dict(trim_starts="-1"), "-1 seconds"),
    "trim_past_the_end": (dict(trim_starts="5"), "trim start 5 s"),
    "more_offsets_than_tracks": (dict(timeline_mode="offsets", offsets="0, 1, 2"), "3 values"),
    "offsets_missing": (dict(timeline_mode="offsets", offsets=""), "one start time per track"),
    "unknown_timeline_mode": (dict(timeline_mode="shuffle"), "Unknown timeline mode 'shuffle'"),
    "too_many_tracks_for_routing": (dict(routing_mode="lrope", **{f"audio_{k}": _voice() for k in range(2, 8)}),
                                    "at most 6"),
}


@pytest.mark.parametrize("case", ENCODE_CASES)
def test_bad_audio_values(case, tiny_wav2vec):
    overrides, match = ENCODE_CASES[case]
    assert_refused(lambda: encode(wav2vec=tiny_wav2vec, **overrides), AudioInputError, match)


def test_unknown_wav2vec_precision(tmp_path):
    with untouched(tmp_path):
        assert_refused(lambda: MultiTalkWav2VecLoader().load(str(tmp_path), precision="int4"), MultiTalkError,
                       "precision 'int4'")


@pytest.fixture(scope="module")
def tiny_wav2vec():
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    from comfyui_multitalk.models.audio import Wav2VecEncoder

    config = Wav2Vec2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=48,
                            conv_dim=[16] * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
    return Wav2VecEncoder(model=Wav2Vec2Model(config).eval(), do_normalize=False, source="tiny")



# --- model files ------------------------------------------------------------------------------

def _tiny_dit_state(seed: int = 1) -> dict:
    from comfyui_multitalk.models.dit.tiny import random_dit_state_dict, tiny_dit_config

    return random_dit_state_dict(tiny_dit_config(), seed=seed)


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory) -> Path:
    """Files as users have them, each wrong for what it is given to."""
    from gguf import GGMLQuantizationType as Q
    from safetensors.torch import save_file

    from comfyui_multitalk.models.dit.keys import is_audio_key
    from comfyui_multitalk.models.encoders.tiny import tiny_text_encoder_state, tiny_vae_state
    from comfyui_multitalk.models.weights.gguf_write import write_tiny_gguf

    folder = tmp_path_factory.mktemp("models")
    state = _tiny_dit_state()
    save_file(state, str(folder / "wan.safetensors"))
    save_file({k: v for k, v in state.items() if is_audio_key(k)}, str(folder / "multitalk.safetensors"))
    full = (folder / "wan.safetensors").read_bytes()
    (folder / "half_downloaded.safetensors").write_bytes(full[: len(full) // 3])
    (folder / "readme.safetensors").write_text("see the model card")
    (folder / "empty.safetensors").write_bytes(b"")
    save_file(tiny_vae_state(base_dim=8, seed=3), str(folder / "wan_2.1_vae.safetensors"))
    save_file(tiny_text_encoder_state(), str(folder / "umt5_xxl.safetensors"))
    lora = {f"diffusion_model.blocks.0.self_attn.q.lora_{s}.weight": torch.zeros(4, 32) for s in ("A", "B")}
    save_file(lora, str(folder / "lightx2v_lora.safetensors"))
    quanto = {"blocks.0.self_attn.q.weight._data": torch.zeros(32, 32, dtype=torch.int8),
              "blocks.0.self_attn.q.weight._scale": torch.ones(32, 1), "patch_embedding.weight": state["patch_embedding.weight"]}
    save_file(quanto, str(folder / "dit_int8.safetensors"))
    # A scaled fp8 file whose scale tensors were stripped: weights at the top of the fp8 range.
    stripped = {k: torch.full_like(v, 400.0).to(torch.float8_e4m3fn)
                if k.startswith("blocks.") and k.endswith(".weight") and v.dim() == 2 and not is_audio_key(k) else v
                for k, v in state.items()}
    save_file({**stripped, "scaled_fp8": torch.zeros(0, dtype=torch.float8_e4m3fn)}, str(folder / "fp8_stripped.safetensors"))
    write_tiny_gguf({"token_embd.weight": torch.zeros(64, 32)}, folder / "llama-3-8b.Q8_0.gguf",
                    lambda key, tensor: Q.F32, arch="llama")
    mixed = folder / "mixed_folder"
    mixed.mkdir()
    for name in ("wan_2.1_vae.safetensors", "umt5_xxl.safetensors"):
        (mixed / name).write_bytes((folder / name).read_bytes())
    return folder


MODEL_CASES = {
    "missing_file": (["nowhere.safetensors", "multitalk.safetensors"], "does not exist"),
    "truncated_file": (["half_downloaded.safetensors", "multitalk.safetensors"], "truncated"),
    "text_named_safetensors": (["readme.safetensors", "multitalk.safetensors"], "readme.safetensors"),
    "empty_file": (["empty.safetensors", "multitalk.safetensors"], "empty"),
    "audio_layers_alone": (["multitalk.safetensors"], "holds only MultiTalk/InfiniteTalk audio layers"),
    "vae_as_dit": (["wan_2.1_vae.safetensors", "multitalk.safetensors"], "VAE"),
    "text_encoder_as_dit": (["umt5_xxl.safetensors", "multitalk.safetensors"], "text encoder"),
    "lora_as_dit": (["lightx2v_lora.safetensors", "multitalk.safetensors"], "LoRA"),
    "quanto_file": (["dit_int8.safetensors", "multitalk.safetensors"], "optimum-quanto"),
    "fp8_without_scales": (["fp8_stripped.safetensors", "multitalk.safetensors"], "no scale"),
    "llm_gguf": (["llama-3-8b.Q8_0.gguf", "multitalk.safetensors"], "llama"),
    "folder_of_other_models": (["mixed_folder", "multitalk.safetensors"], "umt5_xxl.safetensors"),
}


@pytest.mark.parametrize("case", MODEL_CASES)
def test_bad_model_files(case, model_folder):
    from comfyui_multitalk.models import load_dit
    from comfyui_multitalk.models.errors import CheckpointError

    names, match = MODEL_CASES[case]
    with untouched(model_folder):
        assert_refused(lambda: load_dit([str(model_folder / n) for n in names], num_heads=2, text_len=16),
                       CheckpointError, match)


def test_unknown_model_dtype(model_folder):
    from comfyui_multitalk.models import load_dit
    from comfyui_multitalk.models.errors import CheckpointError

    with untouched(model_folder):
        assert_refused(lambda: load_dit([str(model_folder / "wan.safetensors")], dtype="int4", num_heads=2,
                                        text_len=16), CheckpointError, "Unknown dtype 'int4'")


ENCODER_CASES = {
    "vae_loader_given_a_folder": ("vae", "mixed_folder", "is a folder"),
    "vae_loader_given_the_dit": ("vae", "wan.safetensors", "Wan2.1 VAE"),
    "clip_loader_given_the_text_encoder": ("clip", "umt5_xxl.safetensors", "CLIP vision"),
    "text_loader_given_the_vae": ("text", "wan_2.1_vae.safetensors", "umt5"),
    "wav2vec_loader_given_the_dit": ("wav2vec", "wan.safetensors", "wan.safetensors"),
}


@pytest.mark.parametrize("case", ENCODER_CASES)
def test_bad_encoder_files(case, model_folder):
    from comfyui_multitalk.models.audio import load_wav2vec
    from comfyui_multitalk.models.encoders import load_clip_vision, load_text_encoder, load_vae

    loader, name, match = ENCODER_CASES[case]
    load = {"vae": load_vae, "clip": load_clip_vision, "text": load_text_encoder, "wav2vec": load_wav2vec}[loader]
    with untouched(model_folder):
        assert_refused(lambda: load(str(model_folder / name)), MultiTalkError, match)


# --- command line and workflows ---------------------------------------------------------------

@pytest.fixture
def cli_folder(tmp_path: Path) -> Path:
    from comfyui_multitalk.cli.workflow_files import shipped_api_workflow

    folder = tmp_path / "given"
    folder.mkdir()
    workflow = json.loads(Path(shipped_api_workflow("multitalk_two_speakers")).read_text())
    (folder / "two_speakers_api.json").write_text(json.dumps(workflow))
    with_vhs = dict(workflow, **{"99": {"class_type": "VHS_VideoCombine", "inputs": {"images": ["13", 0]}}})
    (folder / "with_vhs.json").write_text(json.dumps(with_vhs))
    (folder / "broken.json").write_text('{"1": {"class_type": ')
    ui = Path(shipped_api_workflow("multitalk_two_speakers").replace("_api.json", ".json"))
    (folder / "ui_format.json").write_text(ui.read_text())
    return folder


CLI_CASES = {
    "missing_workflow": (["run", "{d}/nowhere.json"], "Cannot read the workflow"),
    "broken_json": (["run", "{d}/broken.json"], "not valid JSON"),
    "ui_format_workflow": (["run", "{d}/ui_format.json"], "UI-format workflow"),
    "node_the_cli_cannot_run": (["run", "{d}/with_vhs.json"], "VHS_VideoCombine"),
    "set_without_equals": (["run", "{d}/two_speakers_api.json", "--set", "steps"], "steps"),
    "set_unknown_node": (["run", "{d}/two_speakers_api.json", "--set", "Nobody.steps=3"], "Nobody"),
    "set_unknown_input": (["run", "{d}/two_speakers_api.json", "--set", "MultiTalkSampler.stepz=3"], "stepz"),
    "set_value_out_of_range": (["run", "{d}/two_speakers_api.json", "--set", "MultiTalkSampler.steps=-3"], "-3"),
    "output_webm": (["run", "{d}/two_speakers_api.json", "--output", "{d}/talk.webm"], "webm"),
    "output_over_the_workflow": (["run", "{d}/two_speakers_api.json", "--output", "{d}/two_speakers_api.json"],
                                 "two_speakers_api.json"),
}


@pytest.mark.parametrize("case", CLI_CASES)
def test_bad_command_lines(case, cli_folder, capsys):
    from comfyui_multitalk.cli.main import main

    argv, match = CLI_CASES[case]
    argv = [arg.format(d=cli_folder) for arg in argv]
    with untouched(cli_folder):
        code = main(argv + ["--output-dir", str(cli_folder.parent / "out")])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err and err.startswith("error: "), err
    assert match in err, err
    assert any(word in err.lower() for word in ADVICE), err
    assert not (cli_folder.parent / "out").exists()  # nothing ran, nothing was written


# --- loader and encoder node settings ---------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    from comfyui_multitalk.cli.tiny_weights import write_tiny_weights

    return write_tiny_weights(str(tmp_path_factory.mktemp("tiny")))


def _node_cases(files):
    from comfyui_multitalk.nodes.encoder_nodes import (MultiTalkClipVisionEncode, MultiTalkClipVisionLoader,
                                                       MultiTalkTextEncode, MultiTalkTextEncoderLoader,
                                                       MultiTalkVAELoader)
    from comfyui_multitalk.nodes.model_nodes import MultiTalkModelLoader

    dit = lambda **kw: MultiTalkModelLoader().load(**{  # noqa: E731
        "model": files.dit, "audio_weights": files.audio_weights, "dtype": "auto", "attention": "auto",
        "device": "cpu", "offload": True, **kw})
    clip = lambda: MultiTalkClipVisionLoader().load(files.clip_vision, "cpu", "auto")[0]  # noqa: E731
    t5 = lambda: MultiTalkTextEncoderLoader().load(files.text_encoder, "", "cpu", "auto")[0]  # noqa: E731
    return {
        "model_dtype": (lambda: dit(dtype="int4"), "Unknown dtype 'int4'"),
        "model_attention": (lambda: dit(attention="turbo"), "Unknown attention backend 'turbo'"),
        "model_device": (lambda: dit(device="tpu"), "Unknown device 'tpu'"),
        "vae_device": (lambda: MultiTalkVAELoader().load(files.vae, "tpu", "auto"), "Unknown device 'tpu'"),
        "vae_dtype": (lambda: MultiTalkVAELoader().load(files.vae, "cpu", "int4"), "Unknown dtype 'int4'"),
        "clip_crop": (lambda: MultiTalkClipVisionEncode().encode(clip(), image(), "zoom"), "Unknown crop 'zoom'"),
        "clip_grey_image": (lambda: MultiTalkClipVisionEncode().encode(clip(), torch.rand(1, 64, 64, 1), "none"),
                            r"got shape \[1, 64, 64, 1\]"),
        "prompt_not_text": (lambda: MultiTalkTextEncode().encode(t5(), 42, ""), "must be text, got int"),
    }


NODE_CASES = ("model_dtype", "model_attention", "model_device", "vae_device", "vae_dtype", "clip_crop",
              "clip_grey_image", "prompt_not_text")


@pytest.mark.parametrize("case", NODE_CASES)
def test_bad_loader_and_encoder_settings(case, tiny_files):
    call, match = _node_cases(tiny_files)[case]
    folder = Path(tiny_files.dit).parent
    with untouched(folder):
        assert_refused(call, MultiTalkError, match)
