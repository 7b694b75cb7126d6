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

