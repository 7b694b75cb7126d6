"""AnyTalker's audio features against the official `preprocess_audio` / `process_audio_features`
(../shared/golden/anytalker_audio_cases): the tiny wav2vec2 with wav2vec2-base-960h's
preprocessor (do_normalize: true), fps 24, pad and concat modes."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from comfyui_multitalk.models.anytalker.audio import identity_features, track_features
from comfyui_multitalk.models.audio import load_wav2vec
from comfyui_multitalk.models.errors import AudioInputError

TOL = 2e-5


def write_wav2vec_folder(golden_dir, folder, preprocessor=None):
    """The tiny wav2vec2 as a Hugging Face folder; preprocessor None writes no preprocessor config."""
    folder.mkdir(exist_ok=True)
    config = json.loads((golden_dir / "configs.json").read_text())["wav2vec_tiny"]
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "wav2vec2"}))
    if preprocessor is not None:
        (folder / "preprocessor_config.json").write_text(json.dumps(preprocessor))
    save_file(load_file(str(golden_dir / "wav2vec_tiny_weights.safetensors")), str(folder / "model.safetensors"))
    return folder


@pytest.fixture(scope="module")
def preprocessor_960h(golden_dir):
    return json.loads((golden_dir / "anytalker_configs.json").read_text())["wav2vec"]["preprocessor_config"]


@pytest.fixture(scope="module")
def encoder(golden_dir, tmp_path_factory, preprocessor_960h):
    return load_wav2vec(str(write_wav2vec_folder(golden_dir, tmp_path_factory.mktemp("w2v") / "m", preprocessor_960h)))


@pytest.fixture(scope="module")
def cases(golden_dir):
    return load_file(str(golden_dir / "anytalker_audio_cases.safetensors"))


def _speech(cases, key):
    return cases[key].numpy().astype(np.float32) / 32768  # librosa reads 16-bit PCM as value / 32768


def _diff(a, b) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a.float() - b.float()).abs().max().item()


@pytest.mark.parametrize("case, frames", [("F9", 9), ("no_pad", -1), ("F81", 81)])
def test_single_track(encoder, cases, case, frames):
    features = track_features(encoder, _speech(cases, "single.speech_int16"), frames)
    assert _diff(features, cases[f"single.{case}.audio_emb"]) <= TOL


@pytest.mark.parametrize("mode, frames", [("pad", 9), ("concat", 13)])
def test_tracks_on_the_video_timeline(encoder, cases, mode, frames):
    tracks = [_speech(cases, f"multi_{mode}.speech_int16_{i}") for i in range(2)]
    features = identity_features(encoder, tracks, frames, mode)
    assert features.dtype == torch.bfloat16
    for i in range(2):
        assert _diff(features[i], cases[f"multi_{mode}.audio_feat_{i}"]) <= TOL


def test_concat_places_each_track_after_the_previous(encoder, cases):
    tracks = [_speech(cases, f"multi_concat.speech_int16_{i}") for i in range(2)]
    features = identity_features(encoder, tracks, 13, "concat")
    assert not features[0, 6:].any() and features[0, :6].abs().sum() > 0
    assert not features[1, :6].any() and features[1, 6:].abs().sum(dim=(1, 2, 3)).gt(0).all()


def test_missing_track_is_silence(encoder, cases):
    track = _speech(cases, "multi_pad.speech_int16_0")
    features = identity_features(encoder, [track, None], 9, "pad")
    assert _diff(features[0], cases["multi_pad.audio_feat_0"]) <= TOL and not features[1].any()
    with pytest.raises(AudioInputError, match="No audio tracks"):
        identity_features(encoder, [None], 9)


def test_normalisation_follows_the_preprocessor_config(golden_dir, tmp_path, cases):
    """A folder that says do_normalize false is followed; without a config AnyTalker's 960h default
    (normalise) applies, unlike MultiTalk's single-file default."""
    speech, expected = _speech(cases, "single.speech_int16"), cases["single.F9.audio_emb"]
    plain = load_wav2vec(str(write_wav2vec_folder(golden_dir, tmp_path / "plain", {"do_normalize": False})))
    assert _diff(track_features(plain, speech, 9), expected) > 1e-3
    assert _diff(track_features(plain, speech, 9, normalize=True), expected) <= TOL
    bare = load_wav2vec(str(write_wav2vec_folder(golden_dir, tmp_path / "bare")))
    assert _diff(track_features(bare, speech, 9), expected) <= TOL


def test_unknown_mode_and_empty_track(encoder):
    with pytest.raises(AudioInputError, match="Audio mode 'loop' is unknown"):
        identity_features(encoder, [np.zeros(6400, np.float32)], 9, "loop")
    with pytest.raises(AudioInputError, match="An audio track is empty"):
        track_features(encoder, np.zeros(0, np.float32), 9)
