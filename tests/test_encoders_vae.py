"""Wan2.1 VAE against the official WanVAE (golden numbers), ComfyUI's calling convention, streaming.

The golden weights use the release names (Wan2.1_VAE.pth), which ComfyUI's wan_2.1_vae.safetensors
keeps unchanged. Our VAE, like ComfyUI's, returns raw latents; the official WanVAE returns them
normalised, so the comparison goes through the pack's (de)normalisation (golden README).
"""
from __future__ import annotations

import inspect

import pytest
import torch
from safetensors.torch import load_file, save_file

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

TOL = 2e-5  # the golden README's pass mark


@pytest.fixture(scope="module")
def golden(golden_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("vae")
    weights = load_file(str(golden_dir / "vae_tiny_weights.safetensors"))  # fp16, release names
    save_file(weights, root / "wan_2.1_vae.safetensors")  # ComfyUI's file: the same names
    torch.save(weights, root / "Wan2.1_VAE.pth")
    return {"weights": weights, "case": load_file(str(golden_dir / "vae_tiny_case.safetensors")),
            "comfy": str(root / "wan_2.1_vae.safetensors"), "pth": str(root / "Wan2.1_VAE.pth")}


@pytest.fixture(scope="module")
def vae(golden):
    return load_vae(golden["comfy"])


def assert_matches(out: torch.Tensor, expected: torch.Tensor, tol: float = TOL) -> None:
    assert out.shape == expected.shape
    diff = (out - expected).abs().max().item()
    assert diff <= tol, f"max abs difference {diff:.3g} > {tol:.3g}"


def as_image(video: torch.Tensor) -> torch.Tensor:
    """[3, F, H, W] in [-1, 1] -> ComfyUI IMAGE [F, H, W, 3] in [0, 1] (exact on the golden 1/128 grid)."""
    return video.add(1).mul(0.5).movedim(0, -1)


def test_encode_matches_the_official_latent(golden, vae):
    case = golden["case"]
    raw = vae.encode(as_image(case["video"]))  # [1, 16, 2, 4, 4], raw like ComfyUI's
    assert_matches(normalize_wan_latents(raw)[0], case["latent"])


def test_decode_matches_the_official_frames(golden, vae):
    case = golden["case"]
    raw = denormalize_wan_latents(case["decode_latent"])[None]
    images = vae.decode(raw)  # [1, F, H, W, 3] in 0..1
    assert_matches(images[0].movedim(-1, 0).mul(2).sub(1), case["decoded"])
    streamed = torch.cat(list(vae.decode_video_stream(raw)), dim=2)  # the [-1, 1] frames, 1 then 4
    assert_matches(streamed[0], case["decoded"])


def test_release_and_diffusers_layouts_load_the_same_model(golden, vae, tmp_path):
    from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

    save_file(convert_wan_vae_to_diffusers(dict(golden["weights"])), tmp_path / "diffusers_vae.safetensors")
    pixels = as_image(golden["case"]["video"])
    latent = vae.encode(pixels)
    for path in (golden["pth"], str(tmp_path / "diffusers_vae.safetensors")):
        assert torch.equal(load_vae(path).encode(pixels), latent), path


def test_bf16_file_equals_fp32_on_the_rounded_weights(golden, vae, tmp_path):
    """A bf16 repack (e.g. Wan2_1_VAE_bf16) is upcast: same as the fp32 model on bf16-rounded weights."""
    bf16 = {k: v.to(torch.bfloat16) for k, v in golden["weights"].items()}
    save_file(bf16, tmp_path / "vae_bf16.safetensors")
    save_file({k: v.float() for k, v in bf16.items()}, tmp_path / "vae_rounded_fp32.safetensors")
    pixels = as_image(golden["case"]["video"])
    out = load_vae(str(tmp_path / "vae_bf16.safetensors")).encode(pixels)
    assert_matches(out, load_vae(str(tmp_path / "vae_rounded_fp32.safetensors")).encode(pixels))
    assert (out - vae.encode(pixels)).abs().max() > 1e-4  # the rounding is real


def test_demo_writer_produces_the_release_layout(golden):
    """tiny.to_original_vae_layout (used for demo files) inverts diffusers' converter on the release keys."""
    from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

    written = tiny.to_original_vae_layout(convert_wan_vae_to_diffusers(dict(golden["weights"])))
    assert written.keys() == golden["weights"].keys()
    assert all(torch.equal(written[k], v) for k, v in golden["weights"].items())


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


def test_wrong_files_are_named(tmp_path, golden):
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
        load_vae(golden["comfy"]).encode(torch.rand(16, 16, 3))


def test_loader_node(golden):
    (vae,) = MultiTalkVAELoader().load(golden["comfy"], "cpu", "auto")
    assert vae.dtype == torch.float32  # auto on the CPU
    assert all("tooltip" in spec[1] for spec in MultiTalkVAELoader.INPUT_TYPES()["required"].values())
    with pytest.raises(ValueError, match="Cannot find"):
        MultiTalkVAELoader().load("no_such_vae.safetensors", "cpu", "auto")
