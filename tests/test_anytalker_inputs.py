"""AnyTalker's input builders against the official helpers' numbers
(../shared/golden/anytalker_helper_cases.{json,safetensors}): face boxes and masks, mask
expansion, the dit mask channels, token masks, face crops, output size, frame count, the UniPC
schedule and loop, and the unconditional features."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from comfyui_multitalk.models.anytalker.faces import (crop_face, faces_from_boxes, faces_from_detections,
                                                      faces_from_masks)
from comfyui_multitalk.models.anytalker.geometry import frame_count, output_size, parse_max_area
from comfyui_multitalk.models.anytalker.masks import dit_mask, expand_face_mask, expand_face_masks, token_masks
from comfyui_multitalk.models.anytalker.model import flatten_face_masks
from comfyui_multitalk.models.anytalker.pipeline import null_audio
from comfyui_multitalk.models.anytalker.schedule import UniPCSampler, unipc_sigmas
from comfyui_multitalk.models.errors import AudioInputError, SpeakerInputError

TOL = 2e-5


@pytest.fixture(scope="module")
def helper(golden_dir):
    return (json.loads((golden_dir / "anytalker_helper_cases.json").read_text()),
            load_file(str(golden_dir / "anytalker_helper_cases.safetensors")))


@pytest.fixture(scope="module")
def configs(golden_dir):
    return json.loads((golden_dir / "anytalker_configs.json").read_text())


def _diff(a, b) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a.float() - b.float()).abs().max().item()


def test_face_detection_post_processing(helper):
    for name, case in helper[0]["face_detection"].items():
        faces = faces_from_detections(case["detector_boxes_xyxy"], tuple(case["image_hw"]), case["n"])
        assert [list(b) for b in faces.boxes_xywh] == case["bboxes_xywh"], name
        for mask, (r0, r1, c0, c1), total in zip(faces.masks, case["mask_rows_cols"], case["mask_sums"]):
            expected = torch.zeros_like(mask)
            expected[r0:r1, c0:c1] = 1
            assert torch.equal(mask, expected) and mask.sum().item() == total, name


@pytest.mark.parametrize("n", [1, 2, 3])
def test_masks_from_detected_faces(helper, configs, n):
    tensors, geometry = helper[1], configs["dit_geometry"]
    faces = faces_from_detections(geometry["detector_boxes_xyxy"], tuple(geometry["frame_hw"]), n)
    assert torch.equal(faces.masks, tensors[f"masks_{n}.face_masks"])
    expanded = expand_face_masks(faces.masks)
    assert _diff(expanded, tensors[f"masks_{n}.expanded"]) <= TOL
    assert _diff(expanded.sum(dim=0), tensors[f"masks_{n}.global_mask"]) <= TOL
    assert _diff(dit_mask(expanded.sum(dim=0), (8, 12), geometry["frames"]), tensors[f"masks_{n}.dit_mask"]) <= TOL
    tokens = token_masks(expanded, (4, 6))
    assert _diff(tokens, tensors[f"masks_{n}.token_masks"]) <= TOL
    as_model_input = flatten_face_masks(tokens, (3, 4, 6), batch=1)[0, ..., 0].unflatten(-1, (3, 4, 6))
    assert _diff(as_model_input, tensors[f"masks_{n}.face_mask_list"][:, 0, 0]) <= TOL


def test_expansion_edge_cases(helper):
    tensors = helper[1]
    for index, mask in enumerate(tensors["expand_edge.input"]):
        assert _diff(expand_face_mask(mask), tensors["expand_edge.output"][index]) <= TOL, index


@pytest.mark.parametrize("frames", [1, 5, 13])
def test_dit_mask_of_a_soft_mask(helper, frames):
    tensors = helper[1]
    assert _diff(dit_mask(tensors["dit_mask_soft.input"], (6, 10), frames), tensors[f"dit_mask_soft.F{frames}"]) <= TOL


def test_dit_mask_needs_4n_plus_1_frames(helper):
    with pytest.raises(SpeakerInputError, match="8 video frames: the model needs 4n\\+1"):
        dit_mask(helper[1]["dit_mask_soft.input"], (6, 10), 8)


def test_face_crops(helper):
    ramp = torch.linspace(-1, 1, 3 * 75 * 110).reshape(3, 75, 110)  # the golden's ramp image
    for index, case in enumerate(helper[0]["face_crop"]):
        if "error" in case:
            with pytest.raises(SpeakerInputError, match=r"covers no whole pixel .*\(crop \[0, 0, 0, 0\]\)"):
                crop_face(ramp, case["bbox_xywh"])
            continue
        crop = crop_face(ramp, case["bbox_xywh"])
        assert list(crop.shape) == case["crop_shape"]
        assert _diff(crop, helper[1][f"face_crop.{index}"]) <= 1e-6
        x1, y1, x2, y2 = case["crop_xyxy"]
        assert torch.equal(crop, ramp[:, y1:y2, x1:x2])


def test_faces_from_user_masks():
    masks = torch.zeros(2, 40, 60)
    masks[0, 5:15, 2:12] = 1
    masks[1, 20:38, 30:59] = 1
    faces = faces_from_masks(masks)
    assert faces.boxes_xywh == [(2.0, 5.0, 10.0, 10.0), (30.0, 20.0, 29.0, 18.0)]
    masks[1] = 0
    with pytest.raises(SpeakerInputError, match="Face mask 2 is empty"):
        faces_from_masks(masks)


def test_output_size_from_image(helper):
    for case in helper[0]["size_from_image"]:
        size = output_size(tuple(case["image_hw"]), parse_max_area(case["max_area"]))
        assert list(size) == case["hw"], case
        assert [size[0] // 8, size[1] // 8] == case["lat_hw"]


def test_frame_count_from_audio(helper):
    for case in helper[0]["frame_count"]:
        assert frame_count(case["durations_s"], case["fps"], case["mode"]) == case["frame_num"], case
    with pytest.raises(AudioInputError, match="No audio with a length"):
        frame_count([0.0], 24, "pad")


def test_unipc_schedules(helper):
    for case in helper[0]["schedules"]:
        if case["solver"] != "unipc":
            continue
        sampler = UniPCSampler(case["steps"], case["shift"])
        assert sampler.timesteps.tolist() == case["timesteps"]
        assert _diff(sampler.sigmas, torch.tensor(case["sigmas"])) <= 1e-7


@pytest.mark.parametrize("key, steps, shift", [("unipc_20_shift3", 20, 3.0), ("unipc_40_shift5", 40, 5.0),
                                               ("unipc_3_shift3", 3, 3.0)])
def test_unipc_loop(helper, key, steps, shift):
    tensors = helper[1]
    sampler = UniPCSampler(steps, shift)
    assert torch.equal(sampler.timesteps, tensors[f"{key}.timesteps"])
    latent, worst = tensors[f"{key}.latents"][0], 0.0
    for i in range(steps):
        velocity = tensors[f"{key}.r"][i] + 0.5 * latent  # the golden's stand-in model
        latent = sampler.step(latent[None], velocity[None], i)[0]
        worst = max(worst, _diff(latent, tensors[f"{key}.latents"][i + 1]))
    assert worst <= TOL


def test_unipc_settings_are_checked():
    with pytest.raises(Exception, match="steps is 0"):
        unipc_sigmas(0, 3.0)


def test_null_features_zero_the_audio_only(helper):
    spec = helper[0]["null_features"]
    audio = torch.randn(2, *spec["audio_list"][0]["shape"])
    null = null_audio(audio)
    assert null.shape == audio.shape and not null.any()
    assert spec["ref_face_list_equal_input"] == [True, True]  # faces pass through unchanged


def test_faces_from_user_boxes_square_like_detections(helper):
    case = helper[0]["face_detection"]["square_hits_borders"]
    boxes = [(x1, y1, x2 - x1, y2 - y1) for x1, y1, x2, y2 in sorted(case["detector_boxes_xyxy"])]
    faces = faces_from_boxes(boxes, tuple(case["image_hw"]))
    assert [list(b) for b in faces.boxes_xywh] == case["bboxes_xywh"]
    as_given = faces_from_boxes([(0.25, 0.5, 0.25, 0.25)], (40, 80), square=False)
    assert as_given.boxes_xywh == [(20.0, 20.0, 20.0, 10.0)] and as_given.masks.sum().item() == 200
    with pytest.raises(SpeakerInputError, match="Face box 1 .* has no area"):
        faces_from_boxes([(10, 10, 0, 5)], (40, 80))


def test_detected_faces_on_the_sample_photo(samples_dir):
    """The pack's detector stands in for InsightFace; the official ordering and squaring apply."""
    import numpy as np
    from PIL import Image

    from comfyui_multitalk.models.anytalker.faces import detect_face_regions
    from comfyui_multitalk.models.speakers import detector_unavailable_reason

    path = samples_dir / "two_speakers.jpg"
    if not path.is_file() or detector_unavailable_reason() is not None:
        pytest.skip("sample photo or face detector unavailable")
    pixels = np.asarray(Image.open(path).convert("RGB"))  # 1280 x 790
    faces = detect_face_regions(pixels, 2)
    # Face centres of the man and the woman read off the photo: ~(526, 162) and ~(788, 231).
    centres = [(x + w / 2, y + h / 2) for x, y, w, h in faces.boxes_xywh]
    assert faces.count == 2 and all(w == h for _, _, w, h in faces.boxes_xywh)
    assert abs(centres[0][0] - 526) < 40 and abs(centres[0][1] - 162) < 40
    assert abs(centres[1][0] - 788) < 40 and abs(centres[1][1] - 231) < 40
