"""Spatial tiling of the Wan VAE, streamed in time.

Decoding: the latent is cut into overlapping tiles; every latent frame is decoded tile by tile,
each tile through its own causal cache, and the tiles are blended with linear ramps across each
overlap (weights normalised to sum to one), so one latent frame's pixels are ready at a time.
Encoding: diffusers' own tiled encoder (overlapping tiles, blended; four frames at a time).

Tiling is an approximation: the VAE's middle attention and its convolutions see one tile at a
time, and the ramps hide the seams. It is used when asked for (a tile size, or ComfyUI's tiled
VAE nodes) or, on "auto", only when the frame would not fit in free device memory untiled.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional

import torch

SCALE = 8  # pixels per latent cell
DEFAULT_TILE = 256  # pixels
DEFAULT_OVERLAP = 64  # pixels


@dataclass(frozen=True)
class Tiling:
    tile: int = DEFAULT_TILE  # tile side in pixels (multiple of 8)
    overlap: int = DEFAULT_OVERLAP  # pixels shared by neighbouring tiles


def spans(size: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """[start, stop) cells covering 0..size in tiles of `tile` cells overlapping by `overlap` (the last
    tile is aligned to the end, so it may overlap more)."""
    if tile >= size:
        return [(0, size)]
    stride = max(1, tile - overlap)
    starts = list(range(0, size - tile, stride)) + [size - tile]
    return [(s, s + tile) for s in sorted(set(starts))]


def ramp(span: tuple[int, int], neighbours: list[tuple[int, int]], scale: int, device) -> torch.Tensor:
    """Blend weights [(stop - start) * scale] of one tile along one axis: 1 inside, a linear ramp
    over the part shared with the tile before and the tile after (0 < w <= 1 everywhere)."""
    start, stop = span[0] * scale, span[1] * scale
    position = torch.arange(start, stop, device=device, dtype=torch.float32) + 0.5
    weight = torch.ones(stop - start, device=device)
    index = neighbours.index(span)
    if index > 0:
        shared = neighbours[index - 1][1] * scale - start
        weight = torch.minimum(weight, ((position - start) / shared).clamp(max=1.0))
    if index + 1 < len(neighbours):
        shared = stop - neighbours[index + 1][0] * scale
        weight = torch.minimum(weight, ((stop - position) / shared).clamp(max=1.0))
    return weight


def decode_stream_tiled(model: torch.nn.Module, latent: torch.Tensor, tiling: Tiling,
                        cache_size: int) -> Iterator[torch.Tensor]:
    """Raw latent [B, 16, T, h, w] on the device -> pixels [B, 3, n, H, W] in -1..1, one latent frame
    at a time (n = 1, then 4), decoded in blended tiles."""
    tile, overlap = max(1, tiling.tile // SCALE), max(0, tiling.overlap // SCALE)
    rows, cols = spans(latent.shape[3], tile, overlap), spans(latent.shape[4], tile, overlap)
    x = model.post_quant_conv(latent)  # 1x1x1: per-tile application is exact
    weights = {(r, c): ramp(r, rows, SCALE, x.device)[:, None] * ramp(c, cols, SCALE, x.device)[None, :]
               for r in rows for c in cols}
    caches = {key: [None] * cache_size for key in weights}
    height, width = latent.shape[3] * SCALE, latent.shape[4] * SCALE
    for i in range(latent.shape[2]):
        out: Optional[torch.Tensor] = None
        total = torch.zeros(height, width, device=x.device)
        for (r, c), weight in weights.items():
            piece = model.decoder(x[:, :, i:i + 1, r[0]:r[1], c[0]:c[1]], feat_cache=caches[(r, c)],
                                  feat_idx=[0]).clamp(-1.0, 1.0)  # [B, 3, n, th, tw]
            if out is None:
                out = torch.zeros(*piece.shape[:3], height, width, device=x.device, dtype=torch.float32)
            rs, cs = slice(r[0] * SCALE, r[1] * SCALE), slice(c[0] * SCALE, c[1] * SCALE)
            out[..., rs, cs] += piece.float() * weight
            total[rs, cs] += weight
        yield (out / total).to(latent.dtype)


def encode_tiled(model: torch.nn.Module, video: torch.Tensor, tiling: Tiling) -> torch.Tensor:
    """[B, 3, F, H, W] in -1..1 -> the encoder's mean latent, through diffusers' tiled encoder."""
    saved = (model.use_tiling, model.tile_sample_min_height, model.tile_sample_min_width,
             model.tile_sample_stride_height, model.tile_sample_stride_width)
    stride = max(SCALE, tiling.tile - tiling.overlap)
    model.use_tiling = True
    model.tile_sample_min_height = model.tile_sample_min_width = tiling.tile
    model.tile_sample_stride_height = model.tile_sample_stride_width = stride
    try:
        return model.encode(video).latent_dist.mode()
    finally:
        (model.use_tiling, model.tile_sample_min_height, model.tile_sample_min_width,
         model.tile_sample_stride_height, model.tile_sample_stride_width) = saved


def decode_peak_bytes(base_dim: int, height: int, width: int, itemsize: int) -> int:
    """Rough device bytes to decode one latent frame untiled: about eight activations of four
    frames at full size and the decoder's widest channel count at that size."""
    return 8 * 4 * height * width * base_dim * itemsize
