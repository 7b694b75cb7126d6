"""Timing of the encoders on random weights at the released widths (no downloads needed).

    python benchmarks/bench_encoders.py [--size 128] [--frames 9] [--device cpu]

Prints VAE encode/decode seconds per frame at the real width (base 96), the peak device memory
of streamed decoding (CUDA only), and CLIP ViT-H/14 / a 4-layer umt5-xxl-width encoder timings.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

from comfyui_multitalk.models.encoders import load_clip_vision, load_text_encoder, load_vae, tiny


def _timed(fn):
    start = time.perf_counter()
    result = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return result, time.perf_counter() - start


def bench_vae(root: Path, size: int, frames: int, device: str) -> None:
    save_file(tiny.to_original_vae_layout(tiny.tiny_vae_state(base_dim=96)), root / "vae.safetensors")
    vae, load_s = _timed(lambda: load_vae(str(root / "vae.safetensors"), device=device))
    vae.offload_after_use = False
    pixels = torch.rand(frames, size, size, 3)
    latent, enc_s = _timed(lambda: vae.encode(pixels))
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    _, dec_s = _timed(lambda: vae.decode(latent))
    print(f"VAE (base 96) load {load_s:.2f}s | {frames} frames {size}x{size}: encode {enc_s / frames:.3f}s/frame, "
          f"decode {dec_s / frames:.3f}s/frame")
    if device.startswith("cuda"):
        print(f"  streamed decode peak device memory: {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")


def bench_clip(root: Path, device: str) -> None:
    state = tiny.tiny_clip_state(hidden=1280, layers=32, heads=16, patch=14, image=224,
                                 intermediate=5120, projection=1024)
    save_file({k: v.half() for k, v in state.items()}, root / "clip_h.safetensors")
    del state
    clip, load_s = _timed(lambda: load_clip_vision(str(root / "clip_h.safetensors"), device=device))
    out, enc_s = _timed(lambda: clip.encode_image(torch.rand(1, 480, 832, 3)))
    print(f"CLIP ViT-H/14 load {load_s:.2f}s, encode one frame {enc_s:.2f}s -> "
          f"{tuple(out.penultimate_hidden_states.shape)}")


def bench_text(root: Path, device: str) -> None:
    state = tiny.tiny_text_encoder_state(vocab=1024, d_model=4096, layers=4, heads=64, d_ff=10240)
    state = {k: v.to(torch.bfloat16) for k, v in state.items()}
    state["spiece_model"] = torch.frombuffer(bytearray(tiny.tiny_sentencepiece()), dtype=torch.uint8)
    save_file(state, root / "umt5.safetensors")
    del state
    enc, load_s = _timed(lambda: load_text_encoder(str(root / "umt5.safetensors"), device=device))
    prompt = " ".join(tiny.TINY_CORPUS)
    cond, enc_s = _timed(lambda: enc.encode(prompt))
    print(f"umt5 width 4096, 4 of 24 layers, bf16: load {load_s:.2f}s, encode {cond.shape[1]} tokens {enc_s:.2f}s "
          f"(the full encoder is ~6x this)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--frames", type=int, default=9)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bench_vae(Path(tmp), args.size, args.frames, args.device)
        bench_clip(Path(tmp), args.device)
        bench_text(Path(tmp), args.device)


if __name__ == "__main__":
    main()
