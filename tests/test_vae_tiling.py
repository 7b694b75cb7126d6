"""Spatial VAE tiles streamed in time: the blending is a partition of unity (a per-pixel decoder
decodes tiled exactly as whole), one tile is the untiled decode, real tiles are a close
approximation, ComfyUI's tiled-node sizes are honoured, and "auto" never tiles on the CPU."""
from __future__ import annotations

import torch
from torch import nn

from comfyui_multitalk.models.encoders.vae_tiling import Tiling, decode_stream_tiled, ramp, spans


class PerPixelDecoder(nn.Module):
    """Stand-in decoder whose pixels depend only on their own latent cell (and the causal cache)."""

    def forward(self, x, feat_cache, feat_idx):
        previous = feat_cache[0] if feat_cache[0] is not None else torch.zeros_like(x)
        feat_cache[0] = x
        frames = 1 if feat_idx[0] == 0 and previous.abs().sum() == 0 else 4
        pixels = torch.tanh(x[:, :3] + 0.5 * previous[:, :3])  # [B, 3, 1, h, w]
        return pixels.repeat_interleave(8, dim=-1).repeat_interleave(8, dim=-2).repeat(1, 1, frames, 1, 1)


class StandIn(nn.Module):
    def __init__(self):
        super().__init__()
        self.post_quant_conv = nn.Identity()
        self.decoder = PerPixelDecoder()


def test_spans_cover_and_ramps_blend():
    assert spans(16, 8, 4) == [(0, 8), (4, 12), (8, 16)]
    assert spans(13, 8, 2) == [(0, 8), (5, 13)] and spans(6, 8, 2) == [(0, 6)]
    tiles = spans(16, 8, 4)
    weights = [ramp(t, tiles, 8, "cpu") for t in tiles]
    assert all(w.min() > 0 and w.max() <= 1 for w in weights)
    assert torch.all(weights[0][:32] == 1) and torch.all(weights[-1][-32:] == 1)  # outer edges unramped


def test_blending_reproduces_a_per_pixel_decoder_exactly():
    latent = torch.randn(1, 16, 3, 10, 14)
    whole = torch.cat(list(decode_stream_tiled(StandIn(), latent, Tiling(tile=4096, overlap=0), 1)), dim=2)
    tiled = torch.cat(list(decode_stream_tiled(StandIn(), latent, Tiling(tile=48, overlap=24), 1)), dim=2)
    assert whole.shape == (1, 3, 9, 80, 112)
    assert torch.allclose(tiled, whole, atol=1e-6)


def test_tiny_vae_tiles(tiny_vae):
    latent = torch.randn(1, 16, 2, 8, 16, generator=torch.Generator().manual_seed(0))
    assert tiny_vae.tiling == "auto"
    whole = tiny_vae.decode(latent)  # auto on the CPU: never tiled
    tiny_vae.tiling = Tiling(tile=512, overlap=64)
    try:
        assert torch.equal(tiny_vae.decode(latent), whole)  # one tile is the untiled decode
        tiny_vae.tiling = Tiling(tile=64, overlap=32)
        tiled = tiny_vae.decode(latent)
    finally:
        tiny_vae.tiling = "auto"
    error = (tiled - whole).abs()
    assert error.mean() < 0.05 and (error > 0.25).float().mean() < 0.01, (error.mean(), (error > 0.25).float().mean())  # close: tiles see part of the frame
    assert torch.equal(tiny_vae.decode_tiled(latent, tile_x=8, tile_y=8, overlap=4), tiled)  # ComfyUI's units
    assert tiny_vae.tiling == "auto"
    pixels = whole[0, :5]
    plain = tiny_vae.encode(pixels)
    tiled_latent = tiny_vae.encode_tiled(pixels, tile_x=64, tile_y=64, overlap=32)
    assert tiled_latent.shape == plain.shape
    assert (tiled_latent - plain).abs().mean() < 0.25 * plain.abs().mean()  # tiny random VAE: a rough bound
