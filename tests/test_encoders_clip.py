"""CLIP vision against the official Wan CLIP (golden numbers), in the release and ComfyUI layouts.

The golden weights are the whole open-clip XLM-RoBERTa CLIP as released (visual.*, textual.*,
log_scale). ComfyUI's clip_vision_h layout is made from them here with a mapping written
from the facts in DESIGN.md §7, never from the pack's own tables.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from comfyui_multitalk.models.encoders import ClipVisionOutput, load_clip_vision, preprocess
from comfyui_multitalk.models.errors import EncoderInputError
from comfyui_multitalk.nodes.encoder_nodes import MultiTalkClipVisionEncode, MultiTalkClipVisionLoader

TOL = 2e-5  # the golden README's pass mark
HEADS = 2  # configs.json clip_tiny vision_heads (not readable off the weights)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # OpenAI CLIP statistics (open_clip's OPENAI_DATASET_*)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# DESIGN.md §7: open-clip block names -> Hugging Face CLIPVisionModel names.
HF_BLOCK = {"norm1": "layer_norm1", "norm2": "layer_norm2", "attn.proj": "self_attn.out_proj",
            "mlp.0": "mlp.fc1", "mlp.2": "mlp.fc2"}


def comfy_clip_vision(original: dict[str, torch.Tensor], position_ids: bool = True) -> dict[str, torch.Tensor]:
    """open-clip `visual.*` -> ComfyUI clip_vision_h.safetensors names (`vision_model.*`, `visual_projection`)."""
    vm = "vision_model."
    out = {
        vm + "embeddings.patch_embedding.weight": original["visual.patch_embedding.weight"],
        vm + "embeddings.class_embedding": original["visual.cls_embedding"][0, 0],  # [1, 1, D] -> [D]
        vm + "embeddings.position_embedding.weight": original["visual.pos_embedding"][0],  # [1, N, D] -> [N, D]
        "visual_projection.weight": original["visual.head"].t().contiguous(),  # x @ head -> Linear(D, out)
    }
    if position_ids:  # a buffer older transformers saved; clip_vision_h carries it
        out[vm + "embeddings.position_ids"] = torch.arange(original["visual.pos_embedding"].shape[1])[None]
    for ours, theirs in (("pre_norm", "pre_layrnorm"), ("post_norm", "post_layernorm")):
        for kind in ("weight", "bias"):
            out[f"{vm}{theirs}.{kind}"] = original[f"visual.{ours}.{kind}"]
    for key, value in original.items():
        if not key.startswith("visual.transformer."):
            continue
        layer, name, kind = key.split(".")[2], key.split(".", 3)[3].rsplit(".", 1)[0], key.rsplit(".", 1)[1]
        base = f"{vm}encoder.layers.{layer}."
        if name == "attn.to_qkv":  # fused [3D, ...] = q, k, v stacked
            for part, chunk in zip(("q", "k", "v"), value.chunk(3)):
                out[f"{base}self_attn.{part}_proj.{kind}"] = chunk.contiguous()
        else:
            out[f"{base}{HF_BLOCK[name]}.{kind}"] = value
    return out


@pytest.fixture(scope="module")
def golden(golden_dir):
    return {
        "file": str(golden_dir / "clip_tiny_weights.safetensors"),
        "weights": load_file(str(golden_dir / "clip_tiny_weights.safetensors")),
        "case": load_file(str(golden_dir / "clip_tiny_case.safetensors")),
    }


@pytest.fixture(scope="module")
def comfy_file(golden, tmp_path_factory):
    path = tmp_path_factory.mktemp("clip") / "clip_vision_h.safetensors"
    save_file(comfy_clip_vision(golden["weights"], position_ids=False), path)
    return str(path)


def assert_matches(out: torch.Tensor, expected: torch.Tensor, tol: float = TOL) -> None:
    assert out.shape == expected.shape
    diff = (out - expected).abs().max().item()
    assert diff <= tol, f"max abs difference {diff:.3g} > {tol:.3g}"


def assert_official(out: ClipVisionOutput, case: dict) -> None:
    assert_matches(out.penultimate_hidden_states, case["penultimate_hidden_states"])  # Wan's clip_fea
    assert_matches(out.last_hidden_state, case["last_hidden_state"])


def test_official_preprocessing(golden):
    """Whole frame to 56x56 bicubic (no crop, no antialias), [-1, 1] -> [0, 1], CLIP mean/std."""
    case = golden["case"]
    assert_matches(preprocess(case["image"], 56), case["pixel_values"])
    grey = preprocess(torch.full((1, 9, 13, 3), 0.5), 14)
    assert torch.allclose(grey[0, :, 3, 3], (0.5 - torch.tensor(CLIP_MEAN)) / torch.tensor(CLIP_STD), atol=1e-6)


def test_release_layout_matches_the_official_tower(golden, tmp_path):
    """The release file (.pth or safetensors), its text tower and log_scale skipped."""
    torch.save(golden["weights"], tmp_path / "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth")
    for path in (golden["file"], str(tmp_path / "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth")):
        clip = load_clip_vision(path, num_heads=HEADS)
        assert clip.image_size == 56
        out = clip.encode_image(golden["case"]["image"])
        assert out.penultimate_hidden_states.dtype == torch.float32
        assert_official(out, golden["case"])


def test_comfyui_layout_matches_the_official_tower(golden, comfy_file):
    assert_official(load_clip_vision(comfy_file, num_heads=HEADS).encode_image(golden["case"]["image"]),
                    golden["case"])


def test_comfyui_file_with_position_ids(golden, tmp_path):
    """clip_vision_h.safetensors as shipped: with `vision_model.embeddings.position_ids`."""
    save_file(comfy_clip_vision(golden["weights"]), tmp_path / "clip_vision_h.safetensors")
    clip = load_clip_vision(str(tmp_path / "clip_vision_h.safetensors"), num_heads=HEADS)
    assert_official(clip.encode_image(golden["case"]["image"]), golden["case"])


def test_image_embeds_are_open_clip_token_pooling(golden, comfy_file):
    """Not used by Wan, but ComfyUI's output has it: post_norm(class token after all blocks) @ head."""
    w, case = golden["weights"], golden["case"]
    cls = case["last_hidden_state"][:, 0]
    expected = F.layer_norm(cls, (32,), w["visual.post_norm.weight"].float(), w["visual.post_norm.bias"].float(),
                            eps=1e-5) @ w["visual.head"].float()
    for path in (golden["file"], comfy_file):
        assert_matches(load_clip_vision(path, num_heads=HEADS).encode_image(case["image"]).image_embeds, expected)


def test_centre_crop_option_takes_the_middle_square():
    image = torch.rand(2, 30, 60, 3)
    assert torch.allclose(preprocess(image, 28, crop=True), preprocess(image[:, :, 15:45], 28), atol=1e-6)


def test_output_behaves_like_comfyui_output():
    out = ClipVisionOutput(torch.zeros(1, 2, 3), torch.ones(1, 2, 3))
    assert torch.equal(out["penultimate_hidden_states"], out.penultimate_hidden_states)
    out["image_embeds"] = torch.zeros(1, 4)
    assert "image_embeds" in out and out.image_embeds.shape == (1, 4)


def test_wrong_files_are_named(tmp_path):
    sd_vae = tmp_path / "sd_vae.safetensors"
    save_file({"encoder.down.0.block.0.conv1.weight": torch.zeros(2, 2, 3, 3)}, sd_vae)
    with pytest.raises(EncoderInputError, match="Stable Diffusion.*VAE.*CLIP vision"):
        load_clip_vision(str(sd_vae))
    garbage = tmp_path / "broken.safetensors"
    garbage.write_bytes(b"not a safetensors file")
    with pytest.raises(EncoderInputError, match="Cannot read"):
        load_clip_vision(str(garbage))
    with pytest.raises(EncoderInputError, match=r"IMAGE \[N, H, W, 3\]"):
        preprocess(torch.rand(3, 8, 8), 14)


def test_nodes_and_native_style_call(golden, comfy_file):
    from comfyui_multitalk.nodes import encoder_nodes

    (clip,) = MultiTalkClipVisionLoader().load(comfy_file, "cpu", "fp32")
    assert clip.model.config.num_attention_heads == 1  # width 32 is not a released CLIP: 64 per head
    clip = load_clip_vision(comfy_file, num_heads=HEADS)
    image = golden["case"]["image"]
    (out,) = MultiTalkClipVisionEncode().encode(clip, image, "none")
    assert_official(out, golden["case"])
    centred = clip.encode_image(image, crop=True)  # what ComfyUI's CLIPVisionEncode "center" calls
    assert not torch.allclose(centred.penultimate_hidden_states, out.penultimate_hidden_states)
    for node in (encoder_nodes.MultiTalkClipVisionLoader, encoder_nodes.MultiTalkClipVisionEncode):
        assert all("tooltip" in spec[1] for spec in node.INPUT_TYPES()["required"].values())
