"""The audio nodes end to end on a tiny wav2vec2 file, and the SpeakerAudio object."""
from __future__ import annotations

import logging

import pytest
import torch
from safetensors.torch import save_file

from comfyui_multitalk.models.audio import SpeakerAudio, encode_track, listener_features, load_wav2vec
from comfyui_multitalk.models.errors import AudioInputError
from comfyui_multitalk.nodes.audio_nodes import (
    NODE_CLASS_MAPPINGS,
    NODE_DISPLAY_NAME_MAPPINGS,
    MultiTalkAudioEncode,
    MultiTalkWav2VecLoader,
)


@pytest.fixture(scope="module")
def wav2vec(tmp_path_factory):
    """A tiny random wav2vec2 saved like ComfyUI's single file ('wav2vec2.' prefix, fp16)."""
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    torch.manual_seed(3)
    config = Wav2Vec2Config(
        hidden_size=64, num_hidden_layers=2, num_attention_heads=1, intermediate_size=96, conv_dim=[16] * 7,
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, mask_time_prob=0.0,
    )
    state = {"wav2vec2." + k: v.half() for k, v in Wav2Vec2Model(config).state_dict().items()}
    path = tmp_path_factory.mktemp("w2v") / "wav2vec2-tiny_fp16.safetensors"
    save_file(state, str(path))
    (encoder,) = MultiTalkWav2VecLoader().load(str(path), "fp32")
    return encoder


def _voice(seconds: float, freq: float, level: float = 0.1, rate: int = 16000, channels: int = 1) -> dict:
    t = torch.arange(int(seconds * rate)) / rate
    wave = level * torch.sin(2 * torch.pi * freq * t) * (0.5 + 0.5 * torch.sin(2 * torch.pi * 2 * t))
    return {"waveform": wave.expand(1, channels, -1).clone(), "sample_rate": rate}


def _encode(*args, **kwargs):
    """The node's outputs; the node also returns its timeline picture for ComfyUI's UI."""
    out = MultiTalkAudioEncode().encode(*args, **kwargs)
    assert set(out) == {"ui", "result"} and out["ui"]["multitalk_timeline"] == []  # no ComfyUI here: no files
    return out["result"]


def test_mappings_and_tooltips():
    assert set(NODE_CLASS_MAPPINGS) == {"MultiTalkWav2VecLoader", "MultiTalkLoadAudio", "MultiTalkAudioEncode"}
    assert set(NODE_DISPLAY_NAME_MAPPINGS) == set(NODE_CLASS_MAPPINGS)
    for cls in NODE_CLASS_MAPPINGS.values():
        spec = cls.INPUT_TYPES()
        for section in spec.values():
            for name, (_, options) in section.items():
                assert options.get("tooltip"), f"{cls.__name__}.{name} has no tooltip"
        assert cls.CATEGORY.startswith("MultiTalk/") and len(cls.OUTPUT_TOOLTIPS) == len(cls.RETURN_TYPES)
    assert {f"audio_{k}" for k in range(2, 5)} <= set(MultiTalkAudioEncode.INPUT_TYPES()["optional"])


def test_three_tracks_sequential_end_to_end(wav2vec):
    audio = [_voice(1.0, 200), _voice(0.6, 300, rate=44100, channels=2), _voice(0.4, 250, rate=22050)]
    result, mixed, frames, picture = _encode(
        wav2vec, audio[0], "sequential", True, 25.0, "lrope", audio_2=audio[1], audio_3=audio[2]
    )
    assert isinstance(result, SpeakerAudio) and result.num_speakers == 3
    assert frames == result.num_frames == int(32000 / 16000 * 25) == 50
    assert result.starts == [0, 16000, 25600] and result.lengths == [16000, 9600, 6400]
    for feats in result.features:
        assert feats.shape == (50, 2, 64) and feats.dtype == torch.float32 and feats.device.type == "cpu"
    assert mixed["sample_rate"] == 16000 and mixed["waveform"].shape == (1, 1, 32000)
    assert mixed["waveform"].abs().max() <= 1.0
    assert picture.shape == (1, 3 * 44 + 30, 1024, 3)
    # Turn-taking shows in the activity: speaker 2 silent in the first second, active after it.
    assert result.activity.shape == (3, 50) and not result.activity[1, :25].any() and result.activity[1, 27:38].all()
    assert result.silent == [False, False, False] and result.timeline_mode == "sequential"
    # Features equal the track encoded on its own over the whole timeline.
    alone = encode_track(wav2vec, result.tracks[1].numpy(), 50)
    assert torch.allclose(alone, result.features[1], atol=1e-6)
    win = result.windows(45, 8)
    assert win.shape == (3, 8, 5, 2, 64) and torch.equal(win[0, -1, -1], result.features[0][-1])
    clip = result.mixed_between(40, 60)
    assert clip["waveform"].shape == (1, 1, 20 * 640)
    assert torch.equal(clip["waveform"][..., : 10 * 640], mixed["waveform"][..., 40 * 640 :])
    assert clip["waveform"][..., 10 * 640 :].abs().max() == 0


def test_parallel_silent_track_and_listener(wav2vec, caplog):
    silent = {"waveform": torch.zeros(1, 1, 8000), "sample_rate": 16000}
    with caplog.at_level(logging.WARNING):
        result, _, frames, _ = _encode(
            wav2vec, _voice(1.0, 200), "parallel", True, 25.0, "masked", audio_2=silent, listeners=1
        )
    assert result.num_speakers == 3 and result.silent == [False, True, True] and frames == 25
    assert "Audio track 2 is silent" in caplog.text and len(result.warnings) == 2
    assert not result.activity[1:].any()
    assert torch.allclose(result.features[2], listener_features(wav2vec, 25), atol=1e-6)


def test_offsets_trims_and_frame_override(wav2vec):
    result, mixed, frames, _ = _encode(
        wav2vec, _voice(1.0, 200), "offsets", False, 25.0, "lrope", audio_2=_voice(1.0, 300),
        offsets="0, 0.5", trim_starts="0.25", trim_ends="0, 0.75", num_frames=40,
    )
    assert frames == 40 and result.num_samples == 40 * 640
    assert result.starts == [0, 8000] and result.lengths == [12000, 12000]
    assert all(f.shape[0] == 40 for f in result.features)


def test_bad_inputs_name_track_and_value(wav2vec):
    node, voice = MultiTalkAudioEncode(), _voice(0.5, 200)
    with pytest.raises(AudioInputError, match="audio_3 is connected but audio_2 is not"):
        node.encode(wav2vec, voice, "parallel", True, 25.0, "lrope", audio_3=voice)
    many = {f"audio_{k}": voice for k in range(2, 8)}
    with pytest.raises(AudioInputError, match="7 speaker tracks given.*'lrope' supports at most 6"):
        node.encode(wav2vec, voice, "parallel", True, 25.0, "lrope", **many)
    with pytest.raises(AudioInputError, match="offsets: 1 values \\('1'\\) for 2 audio tracks"):
        node.encode(wav2vec, voice, "offsets", True, 25.0, "lrope", audio_2=voice, offsets="1")
    empty = {"waveform": torch.zeros(1, 1, 0), "sample_rate": 16000}
    with pytest.raises(AudioInputError, match="track 2 is empty"):
        node.encode(wav2vec, voice, "parallel", True, 25.0, "lrope", audio_2=empty)
    with pytest.raises(AudioInputError, match="track 2 has a sample rate of 500 Hz"):
        node.encode(wav2vec, voice, "parallel", True, 25.0, "lrope", audio_2={**voice, "sample_rate": 500})


def test_loader_node_resolves_paths_and_reports_missing(tmp_path):
    from comfyui_multitalk.models.errors import CheckpointError

    with pytest.raises(CheckpointError, match="absent.safetensors"):
        MultiTalkWav2VecLoader().load(str(tmp_path / "absent.safetensors"))
    spec = MultiTalkWav2VecLoader.INPUT_TYPES()["required"]["model"]
    assert spec[0] == "STRING"  # outside ComfyUI the model is a path


def test_load_wav2vec_fp16_precision(wav2vec, tmp_path):
    encoder = load_wav2vec(wav2vec.source, dtype=torch.bfloat16)
    assert encoder.dtype == torch.bfloat16
    speech = _voice(0.5, 200)["waveform"][0, 0].numpy()
    got, want = encode_track(encoder, speech, 12), encode_track(wav2vec, speech, 12)
    assert got.dtype == torch.float32 and (got - want).abs().max() < 0.1 * want.abs().max()
