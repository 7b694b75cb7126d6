"""The Wan2.1 VAE with ComfyUI's calling convention.

Latent space: like ComfyUI's native Wan VAE, `encode` returns RAW latents (the encoder's mean,
not normalised) and `decode` takes raw latents; the diffusion model works on normalised
latents, (raw - mean) / std per channel. `normalize_wan_latents` / `denormalize_wan_latents`
go between the two (ComfyUI's Wan21 latent format does the same inside its samplers).

Pixels: IMAGE [F, H, W, 3] (or [B, F, H, W, 3]) in 0..1 -> latent [B, 16, (F-1)//4+1, H/8, W/8];
decode returns [B, F, H, W, 3] in 0..1 (5-D, as native; ComfyUI's VAEDecode flattens it).
Decoding runs one latent frame at a time through the causal cache and moves each piece to the
CPU at once, so device memory stays flat however long the video is; the result equals a
whole-video decode. Frames too large for free device memory (or when a tile size is set) are
also cut into blended spatial tiles (vae_tiling.py: an approximation, used only then).
"""
from __future__ import annotations

import logging
from typing import Callable, Iterator, Optional

import torch

from ..errors import EncoderInputError
from .devices import resident
from .vae_tiling import Tiling, decode_peak_bytes, decode_stream_tiled, encode_tiled

# Per-channel statistics of Wan2.1 latents (diffusers AutoencoderKLWan latents_mean/std).
WAN21_LATENTS_MEAN = (
    -0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
    0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921,
)
WAN21_LATENTS_STD = (
    2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
    3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160,
)
LATENT_CHANNELS = 16
SPATIAL_COMPRESSION = 8
TEMPORAL_COMPRESSION = 4
_log = logging.getLogger(__name__)


def check_latent(latent: torch.Tensor) -> None:
    """Raise EncoderInputError unless `latent` is a Wan2.1 latent [B, 16, T, H, W] / [16, T, H, W]."""
    if latent.ndim not in (4, 5) or latent.shape[-4] != LATENT_CHANNELS:
        raise EncoderInputError(
            f"A Wan2.1 latent is [B, 16, T, H, W] or [16, T, H, W]; got shape {list(latent.shape)}. "
            "Latents of other models (e.g. Wan2.2's 48 channels) cannot be used here."
        )


def _channel_stats(latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    check_latent(latent)
    shape = (LATENT_CHANNELS, 1, 1, 1)
    mean = torch.tensor(WAN21_LATENTS_MEAN, device=latent.device, dtype=latent.dtype).view(shape)
    std = torch.tensor(WAN21_LATENTS_STD, device=latent.device, dtype=latent.dtype).view(shape)
    return mean, std


def normalize_wan_latents(latent: torch.Tensor) -> torch.Tensor:
    """VAE (raw) latents -> the DiT's normalised latent space: (z - mean) / std per channel."""
    mean, std = _channel_stats(latent)
    return (latent - mean) / std


def denormalize_wan_latents(latent: torch.Tensor) -> torch.Tensor:
    """The DiT's normalised latents -> VAE (raw) latents: z * std + mean per channel."""
    mean, std = _channel_stats(latent)
    return latent * std + mean


def latent_frames_for(pixel_frames: int) -> int:
    """Latent frames for F pixel frames: (F-1)//4 + 1 (frame counts 4n+1 map exactly)."""
    return max(0, (pixel_frames + 3) // TEMPORAL_COMPRESSION)


def pixel_frames_for(latent_frames: int) -> int:
    """Pixel frames decoded from T latent frames: 4(T-1) + 1."""
    return max(0, latent_frames * TEMPORAL_COMPRESSION - 3)


def _decoder_cache_size(decoder: torch.nn.Module) -> int:
    """One cache slot per causal 3-D convolution (kernel > 1 in time or not: the decoder indexes all)."""
    from diffusers.models.autoencoders.autoencoder_kl_wan import WanCausalConv3d

    return sum(isinstance(m, WanCausalConv3d) for m in decoder.modules())


class WanVAE:
    """Wan2.1 VAE object that native ComfyUI nodes and the pack's sampler can both use."""

    latent_channels = LATENT_CHANNELS
    latent_dim = 3  # video latents [B, C, T, H, W]
    downscale_ratio = (latent_frames_for, SPATIAL_COMPRESSION, SPATIAL_COMPRESSION)
    upscale_ratio = (pixel_frames_for, SPATIAL_COMPRESSION, SPATIAL_COMPRESSION)
    downscale_index_formula = (TEMPORAL_COMPRESSION, SPATIAL_COMPRESSION, SPATIAL_COMPRESSION)
    upscale_index_formula = (TEMPORAL_COMPRESSION, SPATIAL_COMPRESSION, SPATIAL_COMPRESSION)

    def __init__(self, model: torch.nn.Module, device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32, offload_device: torch.device | str = "cpu",
                 output_device: torch.device | str = "cpu"):
        if next(model.parameters()).dtype != dtype:
            model = model.to(dtype)
        self.model = model  # diffusers AutoencoderKLWan, resting on offload_device between calls
        self.device = torch.device(device)
        self.dtype = dtype
        self.offload_device = torch.device(offload_device)
        self.output_device = torch.device(output_device)
        self.offload_after_use = True  # the sampler may set False to keep it on the device between calls
        self._cache_size = _decoder_cache_size(model.decoder)
        # Spatial tiles: "auto" (only when a frame would not fit in free device memory), None (never)
        # or a Tiling (always).
        self.tiling: Optional[Tiling] | str = "auto"

    # --- ComfyUI VAE surface -------------------------------------------------------------
    @property
    def vae_dtype(self) -> torch.dtype:
        return self.dtype

    def spacial_compression_encode(self) -> int:
        return SPATIAL_COMPRESSION

    def spacial_compression_decode(self) -> int:
        return SPATIAL_COMPRESSION

    def temporal_compression_encode(self) -> int:
        return TEMPORAL_COMPRESSION

    def temporal_compression_decode(self) -> int:
        return TEMPORAL_COMPRESSION

    def throw_exception_if_invalid(self) -> None:
        """Always valid once loaded (ComfyUI calls this before using a VAE)."""

    def get_sd(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """IMAGE [F, H, W, C] or [B, F, H, W, C] in 0..1 -> raw latents [B, 16, T, H/8, W/8] (float32)."""
        video = _pixels_to_video(pixels)  # [B, 3, F, H, W] in -1..1
        with self._resident():
            latent = self.encode_video(video.to(self.device, self.dtype))
        return latent.to(self.output_device, torch.float32)

    def encode_tiled(self, pixels: torch.Tensor, tile_x: Optional[int] = None, tile_y: Optional[int] = None,
                     overlap: Optional[int] = None, **_temporal) -> torch.Tensor:
        """ComfyUI's tiled entry point (sizes in pixels); time already streams 4 frames at a time."""
        return self._with_tiling(_tiling_of(tile_x, tile_y, overlap, 1), self.encode, pixels)

    def decode(self, samples: torch.Tensor, callback: Optional[Callable[[int, int], None]] = None) -> torch.Tensor:
        """Raw latents [B, 16, T, h, w] -> IMAGE batch [B, 4(T-1)+1, 8h, 8w, 3] in 0..1 (float32, CPU)."""
        check_latent(samples)
        samples = samples.unsqueeze(0) if samples.ndim == 4 else samples
        b, _, t, h, w = samples.shape
        out = torch.empty((b, pixel_frames_for(t), h * SPATIAL_COMPRESSION, w * SPATIAL_COMPRESSION, 3),
                          device=self.output_device)
        for i in range(b):
            start = 0
            for chunk in self.iter_decode(samples[i:i + 1], callback=callback):
                out[i, start:start + chunk.shape[0]] = chunk
                start += chunk.shape[0]
        return out

    def decode_tiled(self, samples: torch.Tensor, tile_x: Optional[int] = None, tile_y: Optional[int] = None,
                     overlap: Optional[int] = None, **_temporal) -> torch.Tensor:
        """ComfyUI's tiled entry point (sizes in latent cells); time already streams frame by frame."""
        return self._with_tiling(_tiling_of(tile_x, tile_y, overlap, SPATIAL_COMPRESSION), self.decode, samples)

    def _with_tiling(self, tiling: Tiling, run: Callable, value: torch.Tensor) -> torch.Tensor:
        saved, self.tiling = self.tiling, tiling
        try:
            return run(value)
        finally:
            self.tiling = saved

    # --- pack API ------------------------------------------------------------------------
    def load_to_device(self) -> None:
        self.model.to(self.device)

    def offload(self) -> None:
        self.model.to(self.offload_device)

    @torch.no_grad()
    def encode_video(self, video: torch.Tensor) -> torch.Tensor:
        """[B, 3, F, H, W] in -1..1, already on the device and dtype -> raw latents on the device."""
        if video.ndim != 5 or video.shape[1] != 3:
            raise EncoderInputError(f"encode_video takes [B, 3, F, H, W]; got {list(video.shape)}.")
        self.load_to_device()
        tiling = self.tiling_for(video.shape[-2], video.shape[-1])
        if tiling is not None:
            return encode_tiled(self.model, video, tiling)
        return self.model.encode(video).latent_dist.mode()  # the encoder's mean, as the official

    @torch.no_grad()
    def iter_decode(self, latent: torch.Tensor, callback: Optional[Callable[[int, int], None]] = None,
                    ) -> Iterator[torch.Tensor]:
        """Raw latent [1, 16, T, h, w] -> IMAGE chunks [n, H, W, 3] on the output device.

        Chunk 0 holds 1 frame, each later one 4. `callback(done, total)` runs after every
        latent frame (progress, cancellation).
        """
        t = latent.shape[2]
        with self._resident():
            for done, frames in enumerate(self.decode_video_stream(latent.to(self.device, self.dtype)), 1):
                chunk = frames[0].movedim(0, -1).float().add(1.0).mul(0.5).clamp(0.0, 1.0)  # [n, H, W, 3]
                yield chunk.to(self.output_device)
                if callback is not None:
                    callback(done, t)

    @torch.no_grad()
    def decode_video_stream(self, latent: torch.Tensor) -> Iterator[torch.Tensor]:
        """Raw latent [B, 16, T, h, w] on the device -> [B, 3, n, H, W] in -1..1 per latent frame."""
        self.load_to_device()
        tiling = self.tiling_for(latent.shape[-2] * SPATIAL_COMPRESSION, latent.shape[-1] * SPATIAL_COMPRESSION)
        if tiling is not None:
            yield from decode_stream_tiled(self.model, latent, tiling, self._cache_size)
            return
        cache: list = [None] * self._cache_size
        x = self.model.post_quant_conv(latent)  # 1x1x1 conv: per-frame application is exact
        for i in range(latent.shape[2]):
            yield self.model.decoder(x[:, :, i:i + 1], feat_cache=cache, feat_idx=[0]).clamp(-1.0, 1.0)

    def tiling_for(self, height: int, width: int) -> Optional[Tiling]:
        """The tiles a frame of this size gets now (None: the whole frame at once)."""
        if self.tiling != "auto":
            return self.tiling
        if self.device.type != "cuda":
            return None
        from ..dit.memory import free_device_memory

        base_dim = self.model.decoder.conv_in.out_channels // 4  # the decoder starts at 4x the base width
        need = decode_peak_bytes(base_dim, height, width, torch.empty((), dtype=self.dtype).element_size())
        return Tiling() if need > free_device_memory(self.device) else None

    def _resident(self):
        return resident(self.model, self.device, self.offload_device, self.offload_after_use)


def _tiling_of(tile_x: Optional[int], tile_y: Optional[int], overlap: Optional[int], unit: int) -> Tiling:
    """A square Tiling in pixels from ComfyUI's tiled-node arguments (in `unit` pixels each)."""
    given = [v for v in (tile_x, tile_y) if v]
    tile = (min(given) if given else 512 // unit) * unit
    tile = max(SPATIAL_COMPRESSION, tile - tile % SPATIAL_COMPRESSION)
    return Tiling(tile, min(tile // 2, (overlap if overlap is not None else 64 // unit) * unit))


def _pixels_to_video(pixels: torch.Tensor) -> torch.Tensor:
    """IMAGE [F, H, W, C] / [B, F, H, W, C] 0..1 -> [B, 3, F', H', W'] in -1..1.

    Like ComfyUI's native VAE: H and W are centre-cropped to multiples of 8 and frames past
    the last 4n+1 boundary are dropped (with a warning).
    """
    if pixels.ndim == 4:
        pixels = pixels.unsqueeze(0)
    if pixels.ndim != 5 or pixels.shape[-1] < 3:
        raise EncoderInputError(f"VAE encode takes IMAGE [F, H, W, 3]; got shape {list(pixels.shape)}.")
    _, f, h, w, _ = pixels.shape
    if h < SPATIAL_COMPRESSION or w < SPATIAL_COMPRESSION or f < 1:
        raise EncoderInputError(f"Image of {f} frame(s) at {w}x{h} is too small for the VAE (min 8x8, 1 frame).")
    keep = pixel_frames_for(latent_frames_for(f))
    if keep != f:
        _log.warning("VAE encode: %d frames is not 4n+1; using the first %d.", f, keep)
    h8, w8 = h - h % SPATIAL_COMPRESSION, w - w % SPATIAL_COMPRESSION
    top, left = (h - h8) // 2, (w - w8) // 2
    pixels = pixels[:, :keep, top:top + h8, left:left + w8, :3]
    return pixels.movedim(-1, 1).float().mul(2.0).sub(1.0)  # [B, 3, F, H, W]
