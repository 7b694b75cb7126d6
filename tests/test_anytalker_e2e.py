"""The whole AnyTalker generate loop against the official `WanAF2V.generate`
(../shared/golden/anytalker_e2e_cases): image + detector boxes + two 0.4 s tracks -> frame count,
audio features, CLIP / VAE inputs, y, masks, noise, 3 UniPC steps with guidance 4.5, final latent.
T5, CLIP and the VAE are stubs that return the golden's stored outputs (and record their inputs),
as in the official run; the tiny models replace `audio_emb` / `audio_proj` with the e2e audio weights
(the tiny wav2vec gives 3 layers x 32)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from comfyui_multitalk.models.anytalker.audio import identity_features
from comfyui_multitalk.models.anytalker.faces import faces_from_detections
from comfyui_multitalk.models.anytalker.geometry import frame_count
from comfyui_multitalk.models.anytalker.pipeline import build_conditions, initial_noise, sample
from comfyui_multitalk.models.audio import load_wav2vec

sys.path.insert(0, str(Path(__file__).parent))
from anytalker_helpers import e2e_model  # noqa: E402

TOL = 2e-5


def _diff(a, b) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a.float() - b.float()).abs().max().item()


@pytest.fixture(scope="module")
def golden(golden_dir):
    return (json.loads((golden_dir / "anytalker_configs.json").read_text()),
            load_file(str(golden_dir / "anytalker_e2e_cases.safetensors")))


@pytest.fixture(scope="module")
def audio(golden_dir, golden, tmp_path_factory):
    """Features of both tracks. The official ran wav2vec2 with eager attention on one CPU thread;
    so does this fixture (sdpa or more threads move fp32 features by ~1e-6, which flips one bf16
    rounding of ~2000 values by one bf16 step, 3e-5)."""
    configs, e2e = golden
    folder = tmp_path_factory.mktemp("wav2vec_960h_tiny")
    tiny = json.loads((golden_dir / "configs.json").read_text())["wav2vec_tiny"]
    (folder / "config.json").write_text(json.dumps({**tiny, "model_type": "wav2vec2"}))
    (folder / "preprocessor_config.json").write_text(json.dumps(configs["wav2vec"]["preprocessor_config"]))
    save_file(load_file(str(golden_dir / "wav2vec_tiny_weights.safetensors")), str(folder / "model.safetensors"))
    encoder = load_wav2vec(str(folder), attn_implementation="eager")
    tracks = [e2e[f"inputs.speech_int16_{i}"].numpy().astype(np.float32) / 32768 for i in range(2)]
    frames = frame_count([len(t) / 16000 for t in tracks], configs["e2e"]["fps"], configs["e2e"]["mode"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return frames, identity_features(encoder, tracks, frames, configs["e2e"]["mode"])
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def conditions(golden):
    configs, e2e = golden
    clip_inputs, vae_inputs = [], []

    def clip(image):  # stub: the stored CLIP outputs in call order (image, then faces left to right)
        clip_inputs.append(image)
        return e2e["inputs.clip_features"][len(clip_inputs) - 1].float()

    def vae(video):
        vae_inputs.append(video)
        return e2e["inputs.vae_latent"]

    image = e2e["inputs.image_rgb_uint8"].numpy()
    faces = faces_from_detections(configs["e2e"]["detector_boxes_xyxy"], image.shape[:2], n=2)
    built = build_conditions(image, faces, configs["e2e"]["frame_num"], configs["e2e"]["max_area"], clip, vae)
    return built, clip_inputs, vae_inputs


def test_frame_count_and_audio_features(golden, audio):
    frames, features = audio
    assert frames == golden[0]["e2e"]["frame_num"]
    for i in range(2):
        assert _diff(features[i], golden[1][f"audio_feat_{i}"]) <= TOL


def test_encoder_inputs_condition_and_noise(golden, conditions):
    e2e = golden[1]
    built, clip_inputs, vae_inputs = conditions
    assert len(clip_inputs) == 3 and len(vae_inputs) == 1
    assert _diff(clip_inputs[0], e2e["clip_input_image"]) <= TOL
    assert _diff(clip_inputs[1], e2e["face_crop_0"]) <= TOL and _diff(clip_inputs[2], e2e["face_crop_1"]) <= TOL
    assert _diff(vae_inputs[0], e2e["vae_input"]) <= TOL
    assert built.size == (64, 96)
    assert _diff(built.y, e2e["y"]) <= TOL
    assert _diff(built.face_masks, e2e["face_mask_list"][:, 0, 0, 0]) <= TOL  # static over the latent frames
    assert torch.equal(e2e["face_mask_list"][:, 0, 0], built.face_masks[:, None].expand(-1, 3, -1, -1))
    assert torch.equal(initial_noise(built, golden[0]["e2e"]["seed"]), e2e["noise"])


@pytest.mark.parametrize("variant", ["af", "legacy"])
def test_generate_loop(golden_dir, golden, audio, conditions, variant):
    configs, e2e = golden
    model = e2e_model(golden_dir, variant)
    settings = configs["e2e"]
    worst = {"latent_in": 0.0, "cond": 0.0, "uncond": 0.0}

    def check(i, latent, cond, uncond):
        for name, value in (("latent_in", latent), ("cond", cond), ("uncond", uncond)):
            worst[name] = max(worst[name], _diff(value, e2e[f"{variant}.step{i}.{name}"]))

    built = conditions[0]
    result = sample(model, built, audio[1], e2e["inputs.context"], e2e["inputs.context_null"],
                    initial_noise(built, settings["seed"]), settings["steps"], settings["shift"],
                    settings["guide_scale"], on_step=check)
    assert all(value <= TOL for value in worst.values()), worst
    assert _diff(result, e2e[f"{variant}.result_latent"]) <= TOL
