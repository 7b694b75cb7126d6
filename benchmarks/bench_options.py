"""CPU side-by-side of the DiT's run options against the plain model, same weights and inputs:
LoRA merged / unmerged, block swap (the CPU stand-in: every streamed block copied per forward),
guidance passes sequential vs batched, and optionally regional compile; then the step caches over
one sampled window (--cache-steps steps x 3 guidance passes) at their recommended thresholds.

    python benchmarks/bench_options.py [--dim 512 --layers 4 --rank 64 --threads 2 --compile]

Prints seconds per call (best of --repeats) and the largest difference from the reference output
(the plain model, or the plain model with the LoRA merged in fp32); for the caches, seconds per
window, the steps each pass skipped and the largest difference from the uncached window's frames
(random weights: TeaCache's and EasyCache's decisions follow this model's numbers, not a trained
one's). GPU figures: bench_gpu.py.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_gpu  # noqa: E402,F401  (makes this checkout's comfyui_multitalk importable)
from cpu_window import run_window, window_inputs  # noqa: E402
from gpu_setup import Window, pass_inputs, random_state  # noqa: E402

from comfyui_multitalk.models import load_dit  # noqa: E402
from comfyui_multitalk.models.dit.block_swap import BlockSwap  # noqa: E402
from comfyui_multitalk.models.dit.compile import compile_blocks  # noqa: E402
from comfyui_multitalk.models.dit.tiny import tiny_dit_config  # noqa: E402
from comfyui_multitalk.models.lora import apply_loras, read_lora  # noqa: E402
from comfyui_multitalk.models.lora.clone import share_clone  # noqa: E402
from comfyui_multitalk.models.sampling.step_cache import CACHE_KINDS, StepCacheSettings  # noqa: E402


def _lora(state: dict, rank: int) -> dict:
    g = torch.Generator().manual_seed(1)
    out = {}
    for key, value in state.items():
        if key.startswith("blocks.") and key.endswith(".weight") and value.dim() == 2:
            layer = key[: -len(".weight")]
            out[f"diffusion_model.{layer}.lora_down.weight"] = 0.01 * torch.randn(rank, value.shape[1], generator=g)
            out[f"diffusion_model.{layer}.lora_up.weight"] = 0.01 * torch.randn(value.shape[0], rank, generator=g)
    return out


def _time(model, args, kwargs, repeats: int) -> tuple[float, torch.Tensor]:
    best, out = float("inf"), None
    with torch.no_grad():
        for _ in range(repeats + 1):
            start = time.perf_counter()
            out = model(*args, **kwargs)
            best = min(best, time.perf_counter() - start)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--rank", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--compile", action="store_true", help="also time regional compile (slow to compile)")
    parser.add_argument("--cache-steps", type=int, default=20, help="steps of the step-cache window (0: skip it)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = tiny_dit_config(num_layers=args.layers, dim=args.dim, num_heads=args.dim // 128 or 2)
    cpu = torch.device("cpu")
    state = random_state(cfg, cpu, torch.float32)
    plain = load_dit(state, dtype="fp32", num_heads=cfg.num_heads, text_len=cfg.text_len)
    lora = read_lora(_lora(state, args.rank))
    window = Window(frames=6, height=30, width=52)  # 6 x 15 x 26 = 2340 tokens
    call = pass_inputs(cfg, window, 2, cpu)
    reference, _ = apply_loras(plain, [(lora, 1.0)], "merged")
    rows = [("plain", plain, None), ("LoRA merged", reference, "lora"),
            ("LoRA unmerged", apply_loras(plain, [(lora, 1.0)], "unmerged")[0], "lora")]
    swapped = share_clone(plain)
    swapped.block_runner = BlockSwap(swapped.blocks, args.layers // 2, cpu)
    rows.append((f"block swap {args.layers // 2}/{args.layers} (stand-in copies)", swapped, "plain"))
    sequential = share_clone(plain)
    sequential.batch_policy = "sequential"
    rows.append(("2 passes sequential", sequential, "plain"))
    if args.compile:
        compiled = share_clone(plain)
        compile_blocks(compiled)
        rows.append(("compiled blocks (inductor)", compiled, "plain"))
    references: dict[str, torch.Tensor] = {}
    print(f"dim {args.dim}, {args.layers} blocks, {window.tokens} tokens, "
          f"2 guidance passes per call, LoRA rank {args.rank}, {args.threads} threads")
    print(f"{'option':42} {'s/call':>8}  max |diff| vs reference")
    for name, model, against in rows:
        seconds, out = _time(model, *call, args.repeats)
        if against is None or against not in references:  # the first of each kind is its reference
            references[against or "plain"] = out
            diff = "(reference)"
        else:
            diff = f"{(out - references[against]).abs().max().item():.1e}"
        print(f"{name:42} {seconds:8.3f}  {diff}")
    if args.cache_steps:
        cache_rows(plain, cfg, args.cache_steps, args.repeats)


# (cache, threshold): the recommended ones, then thresholds at which this random-weight model skips
# (TeaCache's polynomial is fitted to the trained model's timestep embedding; random weights move
# e0 far more between steps, so its rescaled distances run to 1e5).
CACHE_ROWS = [("off", 0.0)] + [(kind, -1.0) for kind in CACHE_KINDS] + [("teacache", 2.5e5), ("easycache", 0.3)]


def cache_rows(model, cfg, steps: int, repeats: int) -> None:
    """One 13-frame 176x320 window (4 x 11 x 20 tokens) without and with each step cache (best of
    `repeats` runs: the cores may be shared)."""
    inputs = window_inputs(cfg.text_dim, 176, 320, 13)
    print(f"\nstep caches: one window, {steps} steps x 3 passes, best of {repeats} (-1: the method's recommended "
          "threshold)")
    print(f"{'cache (threshold)':42} {'s/window':>8}  max |diff| vs uncached; steps skipped")
    reference = None
    for kind, threshold in CACHE_ROWS:
        cache = None if kind == "off" else StepCacheSettings(kind, threshold)
        runs = [run_window(model, inputs, steps, 13, cache) for _ in range(repeats)]
        seconds, frames, note = min(r[0] for r in runs), runs[-1][1], runs[-1][2]
        diff = "(reference)" if reference is None else f"{(frames - reference).abs().max().item():.1e}"
        reference = frames if reference is None else reference
        name = kind if cache is None else f"{kind} ({threshold:g})"
        print(f"{name:42} {seconds:8.2f}  {diff}  {note.split('windows: ', 1)[-1] if note else ''}")


if __name__ == "__main__":
    main()
