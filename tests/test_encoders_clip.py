"""CLIP vision: both file layouts, the official preprocessing, CLIP_VISION_OUTPUT, errors."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from comfyui_multitalk.models.encoders import ClipVisionOutput, load_clip_vision, preprocess, tiny
from comfyui_multitalk.models.encoders.clip_vision import CLIP_MEAN, CLIP_STD
from comfyui_multitalk.models.errors import EncoderInputError
from comfyui_multitalk.nodes.encoder_nodes import MultiTalkClipVisionEncode, MultiTalkClipVisionLoader


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("clip")
    state = tiny.tiny_clip_state()  # hidden 32, 3 layers, 4 heads, 28 px / patch 14: 1 + 4 tokens
    save_file({k: v.to(torch.float16) for k, v in state.items()}, root / "clip_vision_tiny.safetensors")
    torch.save({k: v.to(torch.float16) for k, v in tiny.to_open_clip_layout(state).items()},
               root / "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth")
    return {"state": state, "hf": root / "clip_vision_tiny.safetensors",
            "open_clip": root / "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth"}


def test_both_layouts_give_the_same_features(files):
    image = torch.rand(1, 40, 56, 3)
    a = load_clip_vision(str(files["hf"]), num_heads=4).encode_image(image)
    b = load_clip_vision(str(files["open_clip"]), num_heads=4).encode_image(image)
    assert a.penultimate_hidden_states.shape == (1, 5, 32)
    assert a.last_hidden_state.shape == (1, 5, 32) and a.image_embeds.shape == (1, 16)
    assert a.penultimate_hidden_states.dtype == torch.float32
    for name in ("penultimate_hidden_states", "last_hidden_state", "image_embeds"):
        assert torch.allclose(a[name], b[name], atol=1e-6), name
    assert not torch.allclose(a.penultimate_hidden_states, a.last_hidden_state)


def test_penultimate_is_the_output_of_all_but_the_last_block(files):
    """The official tower stops after blocks[:-1] with no post-norm: recompute that by hand."""
    clip = load_clip_vision(str(files["hf"]), num_heads=4)
    image = torch.rand(1, 28, 28, 3)
    pixels = preprocess(image, 28)
    model = clip.model.vision_model if hasattr(clip.model, "vision_model") else clip.model
    x = model.pre_layrnorm(model.embeddings(pixels))
    for layer in model.encoder.layers[:-1]:
        out = layer(x, attention_mask=None)
        x = out[0] if isinstance(out, tuple) else out
    assert torch.allclose(clip.encode_image(image).penultimate_hidden_states, x, atol=1e-5)


def test_official_preprocessing_resizes_the_whole_frame():
    image = torch.rand(2, 30, 60, 3)
    x = image.movedim(-1, 1) * 2 - 1
    expected = F.interpolate(x, size=(224, 224), mode="bicubic", align_corners=False) * 0.5 + 0.5
    expected = (expected - torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)) / torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    assert torch.allclose(preprocess(image, 224), expected, atol=1e-6)
    grey = preprocess(torch.full((1, 9, 13, 3), 0.5), 14)
    assert torch.allclose(grey[0, :, 3, 3], (0.5 - torch.tensor(CLIP_MEAN)) / torch.tensor(CLIP_STD), atol=1e-6)
    square = preprocess(image, 28, crop=True)
    assert torch.allclose(square, preprocess(image[:, :, 15:45], 28), atol=1e-6)


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


def test_nodes_and_native_style_call(files):
    from comfyui_multitalk.nodes import encoder_nodes

    (clip,) = MultiTalkClipVisionLoader().load(str(files["hf"]), "cpu", "fp32")
    assert clip.model.config.num_attention_heads == 1  # width 32 is not a released CLIP: 64 per head
    clip = load_clip_vision(str(files["hf"]), num_heads=4)
    image = torch.rand(1, 28, 36, 3)
    (out,) = MultiTalkClipVisionEncode().encode(clip, image, "none")
    assert torch.equal(out.penultimate_hidden_states, clip.encode_image(image).penultimate_hidden_states)
    centred = clip.encode_image(image, crop=True)  # what ComfyUI's CLIPVisionEncode "center" calls
    assert not torch.allclose(centred.penultimate_hidden_states, out.penultimate_hidden_states)
    for node in (encoder_nodes.MultiTalkClipVisionLoader, encoder_nodes.MultiTalkClipVisionEncode):
        assert all("tooltip" in spec[1] for spec in node.INPUT_TYPES()["required"].values())
