"""The existing nodes serve AnyTalker: the loader reads the family off released files, the audio
node makes AnyTalker's features with wav2vec2-base-960h (golden numbers), Speakers places one face
per track, and the sampler refuses features of the other family's wav2vec2."""
from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from comfyui_multitalk.models.anytalker.layout import build_face_layout
from comfyui_multitalk.models.anytalker.tiny import (random_anytalker_state_dict, save_tiny_anytalker,
                                                     tiny_anytalker_config)
from comfyui_multitalk.models.dit.tiny import save_tiny_dit
from comfyui_multitalk.models.errors import CheckpointError, GenerationInputError
from comfyui_multitalk.models.speakers.detect import Face
from comfyui_multitalk.nodes.audio_nodes import MultiTalkAudioEncode, MultiTalkWav2VecLoader
from comfyui_multitalk.nodes.model_nodes import MultiTalkModelLoader, MultiTalkModel
from comfyui_multitalk.nodes.sampler_nodes import MultiTalkSampler
from comfyui_multitalk.nodes.sampler_options import MultiTalkSamplerOptions
from comfyui_multitalk.nodes.speaker_nodes import MultiTalkSpeakers

LOAD = dict(dtype="auto", attention="auto", device="cpu", offload=True)
TOL = 2e-5


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Tiny AnyTalker checkpoints as released ({"model": state} in a .pth) and a MultiTalk base + audio file."""
    folder = tmp_path_factory.mktemp("anytalker")
    files = {v: save_tiny_anytalker(str(folder / f"{v}.pth"), tiny_anytalker_config(v)) for v in ("af", "legacy")}
    files["multitalk"] = save_tiny_dit(str(folder))
    return files


@pytest.mark.parametrize("variant,family", [("af", "anytalker-1.3b"), ("legacy", "anytalker-14b")])
def test_loader_reads_the_family_off_a_released_checkpoint(checkpoints, variant, family):
    loaded = MultiTalkModelLoader().load(checkpoints[variant], "none", **LOAD)[0]
    assert loaded.family == family and loaded.model.variant == variant
    # no config in the file: two 128-wide heads for width 256 and text length 512, the Wan defaults
    assert (loaded.model.config.num_heads, loaded.model.config.text_len) == (2, 512)


def test_loader_reads_a_comfyui_style_conversion(tmp_path):
    state = random_anytalker_state_dict(tiny_anytalker_config("af"), seed=1)
    path = tmp_path / "anytalker_1_3b_bf16.safetensors"
    save_file({f"model.diffusion_model.{k}": v.to(torch.bfloat16) for k, v in state.items()}, str(path))
    loaded = MultiTalkModelLoader().load(str(path), "none", **LOAD)[0]
    assert loaded.family == "anytalker-1.3b" and loaded.model.compute_dtype == torch.bfloat16


def test_multitalk_files_still_load_as_multitalk(checkpoints):
    base, audio = checkpoints["multitalk"]
    assert MultiTalkModelLoader().load(base, audio, **LOAD)[0].family == "multitalk"


def test_loader_refuses_what_does_not_fit_anytalker(checkpoints):
    base, audio = checkpoints["multitalk"]
    with pytest.raises(CheckpointError, match="cannot be loaded over"):
        MultiTalkModelLoader().load(checkpoints["af"], audio, **LOAD)
    with pytest.raises(CheckpointError, match="not a MultiTalk/InfiniteTalk audio file"):
        MultiTalkModelLoader().load(base, checkpoints["legacy"], **LOAD)
    with pytest.raises(CheckpointError, match="fp8_e4m3fn"):
        MultiTalkModelLoader().load(checkpoints["af"], "none", **{**LOAD, "dtype": "fp8_e4m3fn"})
    with pytest.raises(CheckpointError, match="fresh_audio_layers"):
        MultiTalkModelLoader().load(checkpoints["af"], "none", **LOAD, fresh_audio_layers=True)


@pytest.fixture(scope="module")
def golden_960h(golden_dir, tmp_path_factory):
    """The golden tiny wav2vec2 laid out as facebook/wav2vec2-base-960h ships: a folder whose config
    says Wav2Vec2ForCTC and whose preprocessor normalises the input."""
    folder = tmp_path_factory.mktemp("w2v") / "wav2vec2-base-960h"
    folder.mkdir()
    tiny = json.loads((golden_dir / "configs.json").read_text())["wav2vec_tiny"]
    preprocessor = json.loads((golden_dir / "anytalker_configs.json").read_text())["wav2vec"]["preprocessor_config"]
    (folder / "config.json").write_text(json.dumps({**tiny, "model_type": "wav2vec2",
                                                    "architectures": ["Wav2Vec2ForCTC"]}))
    (folder / "preprocessor_config.json").write_text(json.dumps(preprocessor))
    save_file(load_file(str(golden_dir / "wav2vec_tiny_weights.safetensors")), str(folder / "model.safetensors"))
    return folder


def test_wav2vec_family_is_read_off_the_files(golden_dir, golden_960h, tmp_path):
    (folder,) = MultiTalkWav2VecLoader().load(str(golden_960h), "fp32")
    (inside,) = MultiTalkWav2VecLoader().load(str(golden_960h / "model.safetensors"), "fp32")
    assert folder.family == inside.family == "anytalker" and folder.do_normalize
    heads = json.loads((golden_dir / "configs.json").read_text())["wav2vec_tiny"]["num_attention_heads"]
    bare = tmp_path / "chinese_like.safetensors"  # no config, no CTC head: taken for chinese-wav2vec2-base
    shutil.copy(golden_dir / "wav2vec_tiny_weights.safetensors", bare)
    assert MultiTalkWav2VecLoader().load(str(bare), "fp32", heads)[0].family == "multitalk"
    head = {"lm_head.weight": torch.zeros(32, 32), "lm_head.bias": torch.zeros(32)}  # 960h's CTC head
    ctc = tmp_path / "wav2vec2_base_960h.safetensors"
    save_file({**{f"wav2vec2.{k}": v for k, v in load_file(str(bare)).items()}, **head}, str(ctc))
    assert MultiTalkWav2VecLoader().load(str(ctc), "fp32", heads)[0].family == "anytalker"


def _audio(cases, key) -> dict:
    samples = cases[key].float() / 32768  # 16-bit PCM as librosa reads it
    return {"waveform": samples[None, None].clone(), "sample_rate": 16000}


@pytest.mark.parametrize("timeline,mode,frames", [("parallel", "pad", 9), ("sequential", "concat", 13)])
def test_audio_node_makes_the_official_features(golden_dir, golden_960h, timeline, mode, frames):
    cases = load_file(str(golden_dir / "anytalker_audio_cases.safetensors"))
    (encoder,) = MultiTalkWav2VecLoader().load(str(golden_960h), "fp32")
    out = MultiTalkAudioEncode().encode(encoder, _audio(cases, f"multi_{mode}.speech_int16_0"), timeline, False,
                                        24.0, "lrope", audio_2=_audio(cases, f"multi_{mode}.speech_int16_1"))
    result, mixed, num_frames, _ = out["result"]
    assert result.family == "anytalker" and num_frames == frames == result.num_frames
    for i in range(2):
        assert result.features[i].dtype == torch.bfloat16
        assert (result.features[i].float() - cases[f"multi_{mode}.audio_feat_{i}"]).abs().max() <= TOL
    if mode == "concat":  # track 2 is heard from frame 6 (0.25 s of track 1 = 6 frames at 24 fps) as its features
        assert result.starts == [0, 4000] and not result.features[1][:6].any()
    assert "multitalk_notes" not in out["ui"]  # the official settings raise no note


def test_tracks_in_turn_start_on_whole_frames(golden_960h):
    """The official concat mode puts track k's features at the sum of the earlier tracks' ceil(seconds x fps)
    frames; the soundtrack is placed there too, so each voice is heard where its features are."""
    from comfyui_multitalk.models.anytalker.audio_timeline import build_anytalker_audio

    (encoder,) = MultiTalkWav2VecLoader().load(str(golden_960h), "fp32")
    tracks = [np.full(n, 0.1, np.float32) for n in (1000, 5000, 2000)]  # 1.5, 7.5 and 3 frames at 24 fps
    result = build_anytalker_audio(encoder, tracks, "sequential", 24.0)
    assert result.starts == [0, 1333, 6667]  # frames 0, 2 (= ceil 1.5), 10 (= 2 + ceil 7.5) x 16000 / 24
    assert result.num_frames == 9  # ceil(8000 / 16000 x 24) = 12 -> 4n+1


def test_audio_node_says_what_differs_from_the_official(golden_dir, golden_960h):
    cases = load_file(str(golden_dir / "anytalker_audio_cases.safetensors"))
    (encoder,) = MultiTalkWav2VecLoader().load(str(golden_960h), "fp32")
    out = MultiTalkAudioEncode().encode(encoder, _audio(cases, "single.speech_int16"), "parallel", True, 25.0, "lrope")
    notes = " ".join(out["ui"]["multitalk_notes"])
    assert "24 fps" in notes and "-23 LUFS" in notes
    assert out["result"][0].num_frames == 9  # ceil(0.4 s x 25) = 10 -> 4n+1


def test_speakers_node_places_faces_for_anytalker_audio():
    image = torch.zeros(1, 480, 832, 3)
    audio = SimpleNamespace(features=[None, None], family="anytalker")
    mask = torch.zeros(1, 480, 832)
    mask[0, 100:150, 600:700] = 1.0  # speaker 2's face, painted
    out = MultiTalkSpeakers().place(image, 0, "480p", "40, 60, 60, 100", audio=audio, mask_2=mask)
    layout, _, picture, width, height, report = out["result"]
    assert (height, width) == (448, 832)  # the official size of a 480x832 image at 832*480
    assert picture.shape == (1, 480, 832, 3)  # the picture as is: CLIP and the face crops read it
    # box (40, 60, 60x100) -> the square of side 100 about its centre (70, 110); the mask -> its bounding box
    assert layout.faces.boxes_xywh == [(20.0, 60.0, 100.0, 100.0), (600.0, 100.0, 100.0, 50.0)]
    assert layout.sources == ["box", "mask"] and "face 2: mask" in report


def test_automatic_faces_are_the_largest_left_to_right():
    image = torch.zeros(1, 200, 300, 3)
    found = [Face(200, 50, 40, 40, 9.0), Face(20, 60, 30, 30, 8.0), Face(120, 40, 50, 50, 1.0)]
    layout = build_face_layout(image, 2, "120p", detect=lambda pixels: found)
    assert layout.faces.boxes_xywh == [(120.0, 40.0, 50.0, 50.0), (200.0, 50.0, 40.0, 40.0)]
    few = build_face_layout(image, 3, "120p", detect=lambda pixels: found[:1])
    assert few.sources == ["strip"] * 3 and "equal vertical strips" in few.notes[0]
    assert [round(x + w / 2) for x, _, w, _ in few.faces.boxes_xywh] == [50, 150, 250]  # strip centres


def _sampler_call(model, audio, speakers=SimpleNamespace(resolution="120p"), clip_vision="clip", **timelines):
    values = dict(positive=None, negative=None, clip_vision_output=None, vae=None, image=torch.zeros(1, 64, 64, 3),
                  steps=1, shift=0.0, text_scale=4.5, audio_scale=4.0, seed=0, sampler="unipc", mode="single",
                  window_frames=81, motion_frames=0, color_correction=0.0, max_frames=0, routing="lrope", apg=False)
    return MultiTalkSampler().sample(model, audio=audio, speakers=speakers, clip_vision=clip_vision, **values,
                                     **timelines)


def test_sampler_refuses_the_other_familys_features(checkpoints):
    anytalker = MultiTalkModelLoader().load(checkpoints["af"], "none", **LOAD)[0]
    multitalk = MultiTalkModelLoader().load(*checkpoints["multitalk"], **LOAD)[0]
    with pytest.raises(GenerationInputError, match="made with chinese-wav2vec2-base.*wav2vec2-base-960h"):
        _sampler_call(anytalker, SimpleNamespace(family="multitalk"))
    with pytest.raises(GenerationInputError, match="made with wav2vec2-base-960h.*chinese-wav2vec2-base"):
        _sampler_call(multitalk, SimpleNamespace(family="anytalker"))


def test_sampler_asks_for_what_anytalker_needs(checkpoints):
    model = MultiTalkModel(torch.nn.Linear(1, 1), torch.device("cpu"), False, "stub")
    model.model.family = "anytalker-1.3b"
    audio = SimpleNamespace(family="anytalker", num_frames=9, features=[])
    faces = SimpleNamespace(family="anytalker", source_size=(64, 64), resolution="120p")
    with pytest.raises(GenerationInputError, match="face layout"):
        _sampler_call(model, audio, speakers=SimpleNamespace(resolution="120p"))
    with pytest.raises(GenerationInputError, match="connect clip_vision"):
        _sampler_call(model, audio, speakers=faces, clip_vision=None)
    with pytest.raises(GenerationInputError, match="prompt_timeline work with the MultiTalk family only"):
        _sampler_call(model, audio, speakers=faces, prompt_timeline=object())
    with pytest.raises(GenerationInputError, match="Speakers' image output"):
        _sampler_call(model, audio, speakers=SimpleNamespace(**{**vars(faces), "source_size": (48, 64)}))
    with pytest.raises(GenerationInputError, match="not AnyTalker: disconnect the options input"):
        _sampler_call(model, audio, speakers=faces, options=MultiTalkSamplerOptions().build(
            preset="lightx2v_4step", audio_scale_schedule="", cache="off", cache_threshold=-1.0,
            cache_start_step=-1, cache_end_step=-1, magcache_k=2)["result"][0])
