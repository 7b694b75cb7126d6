"""Wan2.1 VAE: file layouts, ComfyUI's calling convention, streamed decode, latent statistics."""
from __future__ import annotations

import inspect

import pytest
import torch
from safetensors.torch import save_file

from comfyui_multitalk.models.encoders import (
    denormalize_wan_latents,
    latent_frames_for,
    load_vae,
    normalize_wan_latents,
    pixel_frames_for,
    tiny,
)
from comfyui_multitalk.models.encoders.vae import WAN21_LATENTS_MEAN, WAN21_LATENTS_STD
from comfyui_multitalk.models.errors import EncoderInputError
from comfyui_multitalk.nodes.encoder_nodes import MultiTalkVAELoader


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("vae")
    state = tiny.tiny_vae_state(base_dim=8)
    save_file(tiny.to_original_vae_layout(state), root / "wan_2.1_vae.safetensors")
    torch.save(tiny.to_original_vae_layout(state), root / "Wan2.1_VAE.pth")
    save_file(state, root / "diffusers_vae.safetensors")
    return {"comfy": root / "wan_2.1_vae.safetensors", "pth": root / "Wan2.1_VAE.pth",
            "diffusers": root / "diffusers_vae.safetensors"}


@pytest.fixture(scope="module")
def vae(files):
    return load_vae(str(files["comfy"]))


def test_original_layout_is_the_released_structure(files):
    from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

    state = tiny.tiny_vae_state(base_dim=8)
    assert convert_wan_vae_to_diffusers(tiny.to_original_vae_layout(state)).keys() == state.keys()
    original = tiny.to_original_vae_layout(state)
    assert {"conv1.weight", "conv2.weight", "decoder.upsamples.3.resample.1.weight",
            "encoder.downsamples.2.resample.1.weight", "decoder.middle.1.to_qkv.weight"} <= original.keys()


def test_layouts_load_to_identical_models(files, vae):
    pixels = torch.rand(5, 16, 24, 3)
    latent = vae.encode(pixels)
    for key in ("pth", "diffusers"):
        assert torch.equal(load_vae(str(files[key])).encode(pixels), latent), key


def test_encode_decode_shapes_follow_comfyui(vae):
    pixels = torch.rand(5, 16, 24, 3)  # 4n+1 frames
    latent = vae.encode(pixels)
    assert latent.shape == (1, 16, 2, 2, 3) and latent.dtype == torch.float32
    images = vae.decode(latent)
    assert images.shape == (1, 5, 16, 24, 3)  # 5-D like native; VAEDecode flattens the batch
    assert images.min() >= 0 and images.max() <= 1
    assert vae.encode(pixels[:1]).shape == (1, 16, 1, 2, 3)
    assert vae.decode(vae.encode(pixels[:1])).shape == (1, 1, 16, 24, 3)
    batch = vae.encode(torch.stack([pixels, pixels.flip(0)]))  # [B, F, H, W, 3]
    assert batch.shape == (2, 16, 2, 2, 3) and torch.allclose(batch[0], latent[0], atol=1e-6)


def test_like_native_odd_sizes_are_cropped_and_extra_frames_dropped(vae):
    pixels = torch.rand(7, 19, 26, 3)  # 7 = 5 + 2 frames, 19x26 -> 16x24 centre crop
    latent = vae.encode(pixels)
    assert latent.shape == (1, 16, 2, 2, 3)
    assert torch.equal(latent, vae.encode(pixels[:5, 1:17, 1:25]))


def test_streamed_decode_equals_whole_decode(vae):
    latent = torch.randn(1, 16, 3, 2, 3)
    streamed = vae.decode(latent)[0]
    whole = vae.model.decode(latent).sample  # diffusers' own whole-video decode, [1, 3, F, H, W]
    whole = whole.add(1).mul(0.5).clamp(0, 1)[0].movedim(0, -1)
    assert streamed.shape == whole.shape == (9, 16, 24, 3)
    assert torch.equal(streamed, whole)
    steps = []
    chunks = list(vae.iter_decode(latent, callback=lambda done, total: steps.append((done, total))))
    assert [c.shape[0] for c in chunks] == [1, 4, 4] and steps[-1] == (3, 3)
    assert torch.equal(torch.cat(chunks), streamed)


def test_latent_statistics_match_the_wan_pipeline():
    from diffusers import AutoencoderKLWan

    defaults = inspect.signature(AutoencoderKLWan.__init__).parameters
    assert list(WAN21_LATENTS_MEAN) == defaults["latents_mean"].default
    assert list(WAN21_LATENTS_STD) == defaults["latents_std"].default
    raw = torch.randn(1, 16, 2, 3, 4)
    normed = normalize_wan_latents(raw)
    assert torch.allclose(normed[0, 7], (raw[0, 7] - 1.5508) / 2.0743)
    assert torch.allclose(denormalize_wan_latents(normed), raw, atol=1e-6)
    assert torch.allclose(normalize_wan_latents(raw[0]), normed[0])
    with pytest.raises(EncoderInputError, match="16"):
        normalize_wan_latents(torch.zeros(1, 48, 2, 3, 4))


def test_comfyui_vae_surface(vae):
    assert vae.latent_channels == 16 and vae.latent_dim == 3
    assert vae.spacial_compression_encode() == vae.spacial_compression_decode() == 8
    assert vae.temporal_compression_decode() == 4
    assert [latent_frames_for(f) for f in (1, 4, 5, 81)] == [1, 1, 2, 21]
    assert [pixel_frames_for(t) for t in (1, 2, 21)] == [1, 5, 81]
    assert vae.downscale_ratio[0](81) == 21 and vae.upscale_ratio[0](21) == 81
    assert vae.vae_dtype == torch.float32 and vae.device.type == "cpu"
    assert next(vae.model.parameters()).device == vae.offload_device


def test_wrong_files_are_named(tmp_path, files):
    cases = {
        "sd_vae": ({"encoder.down.0.block.0.conv1.weight": torch.zeros(1)}, "Stable Diffusion.*Wan2.1 VAE"),
        "dit": ({"blocks.0.self_attn.q.weight": torch.zeros(1)}, "Wan diffusion model"),
        "wan22": ({"decoder.upsamples.0.upsamples.0.residual.2.weight": torch.zeros(1)}, "Wan2.2 VAE"),
    }
    for name, (state, message) in cases.items():
        save_file(state, tmp_path / f"{name}.safetensors")
        with pytest.raises(EncoderInputError, match=message):
            load_vae(str(tmp_path / f"{name}.safetensors"))
    with pytest.raises(EncoderInputError, match="IMAGE"):
        load_vae(str(files["comfy"])).encode(torch.rand(16, 16, 3))


def test_loader_node(files):
    (vae,) = MultiTalkVAELoader().load(str(files["comfy"]), "cpu", "auto")
    assert vae.dtype == torch.float32  # auto on the CPU
    assert all("tooltip" in spec[1] for spec in MultiTalkVAELoader.INPUT_TYPES()["required"].values())
    with pytest.raises(ValueError, match="Cannot find"):
        MultiTalkVAELoader().load("no_such_vae.safetensors", "cpu", "auto")
