"""Models and inputs of the GPU benchmark: random weights at a config's shapes, made on the device,
in the pack's three weight kinds (bf16, fp8 scaled, GGUF Q8_0), a random Wan VAE, the inputs of
one window's guidance passes, and a timer."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from comfyui_multitalk.models import load_dit
from comfyui_multitalk.models.dit.config import DiTConfig
from comfyui_multitalk.models.dit.model import MultiTalkDiT

# Which text and audio each guidance pass gets (as the sampler builds them).
PASSES = {3: (("positive", 2), ("negative", 2), ("negative", 1)),  # cond, no text, no text + no audio
          2: (("positive", 2), ("positive", 1)),  # cond, no audio (distilled: text scale 1)
          1: (("positive", 2),)}


def random_state(cfg: DiTConfig, device: torch.device, dtype: torch.dtype = torch.bfloat16,
                 seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights for `cfg` made on `device`: norms near 1, matrices with std 1/sqrt(fan_in)."""
    with torch.device("meta"):
        shapes = MultiTalkDiT(cfg).state_dict()
    generator = torch.Generator(device=device).manual_seed(seed)
    state = {}
    for key, meta in shapes.items():
        tensor = torch.empty(meta.shape, device=device, dtype=dtype)
        if key.endswith("modulation"):
            tensor.normal_(0.0, cfg.dim ** -0.5, generator=generator)
        elif meta.dim() == 1 and key.endswith(".weight"):  # norm scales (RMSNorm, affine LayerNorms)
            tensor.normal_(1.0, 0.05, generator=generator)
        elif meta.dim() >= 2:
            fan_in = meta[0].numel()
            tensor.normal_(0.0, 0.5 * fan_in ** -0.5, generator=generator)
        else:
            tensor.normal_(0.0, 0.01, generator=generator)
        state[key] = tensor
    return state


def fp8_model(state: dict, cfg: DiTConfig, device: torch.device) -> MultiTalkDiT:
    """Block linears quantised to e4m3fn with per-tensor scales (the audio layers keep bf16), as
    the loader's fp8_e4m3fn choice does; the other tensors are shared with `state`."""
    return load_dit(state, dtype="fp8_e4m3fn", device=device, num_heads=cfg.num_heads, text_len=cfg.text_len)


def gguf_q8_model(state: dict, cfg: DiTConfig, device: torch.device) -> MultiTalkDiT:
    """city96's Q8_0 rule: 2-D block weights in Q8_0 blocks (encoded on the device), the rest as is."""
    from gguf import GGMLQuantizationType

    from comfyui_multitalk.models.weights.gguf_quantize import quantize_q8_0
    from comfyui_multitalk.models.weights.gguf_weight import GGUFWeight

    quantised = {key: GGUFWeight(quantize_q8_0(value), GGMLQuantizationType.Q8_0, value.shape)
                 if key.startswith("blocks.") and value.dim() == 2 else value for key, value in state.items()}
    return load_dit(quantised, device=device, num_heads=cfg.num_heads, text_len=cfg.text_len)


@dataclass
class Window:
    """One window's shapes: latent frames x height x width (latent cells) and speakers."""

    frames: int
    height: int
    width: int
    speakers: int = 2

    @property
    def video_frames(self) -> int:
        return 4 * (self.frames - 1) + 1

    @property
    def tokens(self) -> int:
        """Tokens of one pass: latent cells over the 1 x 2 x 2 patches."""
        return self.frames * self.height * self.width // 4


def pass_inputs(cfg: DiTConfig, window: Window, passes: int, device: torch.device, seed: int = 0) -> tuple:
    """(args, kwargs) of one model call running `passes` guidance passes as one batch."""
    g = torch.Generator(device=device).manual_seed(seed)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    t, h, w, s = window.frames, window.height, window.width, window.speakers
    texts = {"positive": torch.randn(min(cfg.text_len, 120), cfg.text_dim, generator=g, device=device, dtype=dtype),
             "negative": torch.randn(min(cfg.text_len, 60), cfg.text_dim, generator=g, device=device, dtype=dtype)}
    layers = cfg.audio_feature_dim // 768 if cfg.audio_feature_dim % 768 == 0 else 1  # wav2vec layers x 768
    audio = torch.randn(s, window.video_frames, cfg.audio_window, layers, cfg.audio_feature_dim // layers,
                        generator=g, device=device, dtype=dtype)  # [S, F, 5, 12, 768], the official layout
    chosen = PASSES[passes]
    masks = torch.zeros(s + 1, h, w, device=device)
    for k in range(s):
        masks[k, h // 8:, k * w // s + 1:(k + 1) * w // s - 1] = 1
    masks[-1] = (masks[:-1].sum(0) == 0).float()
    args = (torch.randn(passes, 16, t, h, w, generator=g, device=device), torch.full((passes,), 700.0, device=device),
            [texts[text] for text, _ in chosen], torch.randn(1, 257, cfg.clip_dim, generator=g, device=device,
                                                              dtype=dtype),
            torch.randn(1, 20, t, h, w, generator=g, device=device))
    stacked = torch.stack([audio if n == s else torch.zeros_like(audio) for _, n in chosen])
    return args, dict(audio=stacked, ref_masks=masks, active_speakers=[n for _, n in chosen])


def random_vae(device: torch.device, dtype: torch.dtype, base_dim: int = 96):
    """The pack's WanVAE over a randomly initialised diffusers AutoencoderKLWan of the released sizes."""
    from diffusers import AutoencoderKLWan

    from comfyui_multitalk.models.encoders.vae import WanVAE

    torch.manual_seed(0)
    model = AutoencoderKLWan(base_dim=base_dim).to(device=device, dtype=dtype).eval().requires_grad_(False)
    return WanVAE(model, device=device, dtype=dtype, offload_device=device, output_device="cpu")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(run: Callable[[], object], device: torch.device, warmup: int,
          repeats: int) -> tuple[float, Optional[float], object]:
    """(best seconds of `repeats` runs after `warmup` runs, seconds of the first warm-up or None,
    the last run's result)."""
    first, out = None, None
    with torch.no_grad():
        for i in range(warmup):
            start = time.perf_counter()
            out = run()
            synchronize(device)
            first = time.perf_counter() - start if i == 0 else first
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            out = run()
            synchronize(device)
            best = min(best, time.perf_counter() - start)
    return best, first, out


def peak_gb(device: torch.device) -> float:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
