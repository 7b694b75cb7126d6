"""GPU benchmark of the MultiTalk DiT at the released 14B shapes, with random weights (no files).

    python benchmarks/bench_gpu.py [--official DIR] [--fast-steps 4] [--fast-passes 2] [--cap-gb 24]

For one 81-frame 480p window (832x480, 21 x 30 x 52 = 32760 tokens) with 2 speakers it prints:
  1. one model forward (one guidance pass) in bf16, fp8-scaled (dequantised, and fp8 x fp8 products)
     and GGUF Q8_0 weights, and the official MultiTalk forward on the same weights (from a snapshot
     of MeiGen-AI/MultiTalk given with --official, never part of the project): seconds, achieved
     TFLOP/s and the fraction of the GPU's dense bf16 peak (FLOPs counted from the shapes, see
     gpu_flops.py), peak VRAM, and our time relative to the official's;
  2. whole-window times for (a) the official settings (40 steps x 3 passes, bf16), (b) a distilled
     schedule (--fast-steps x --fast-passes: 4 x 2 = step-distilled LoRA with audio guidance),
     (c) (b) + compile + fp8 products + a step cache (--fast-cache, default MagCache: skipped steps
     cost a light call without the blocks), (d) (b) under a --cap-gb memory cap
     with block swap. Window time = steps x (time of one call running all passes) + VAE encode and
     decode, each timed (a few calls after warm-up), not a full sampling run: the sampler adds only
     elementwise work between calls.
It fits one device call of under 8 minutes (--deadline-s guards it: late sections are skipped and
say so; the optional rows, which no target reads, yield first to the rows the targets read). --tiny
runs every path at toy sizes (CPU or GPU) in seconds, for tests.
"""
from __future__ import annotations

import argparse
import gc
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Optional

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pack_path  # noqa: E402,F401  (this checkout's comfyui_multitalk, also on the bare device copy)
from bench_cache import CACHES  # noqa: E402
from bench_gpu_report import Report  # noqa: E402
from bench_gpu_runs import Bench  # noqa: E402


def parse(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official", default=os.environ.get("MULTITALK_OFFICIAL_DIR"),
                        help="folder holding the official wan/ package (a snapshot of MeiGen-AI/MultiTalk)")
    parser.add_argument("--fast-steps", type=int, default=4, help="steps of configurations (b)-(d)")
    parser.add_argument("--fast-passes", type=int, default=2, choices=(1, 2, 3), help="guidance passes of (b)-(d)")
    parser.add_argument("--fast-cache", default="magcache", choices=CACHES,
                        help="step cache of (c): MagCache plans from its calibrated ratios (none: off)")
    parser.add_argument("--fast-cache-threshold", type=float, default=-1.0,
                        help="its threshold (-1: the method's recommended value)")
    parser.add_argument("--cap-gb", type=float, default=24.0, help="memory cap of (d), GiB")
    parser.add_argument("--repeats", type=int, default=2, help="timed calls per forward (after one warm-up)")
    parser.add_argument("--window-repeats", type=int, default=1, help="timed calls per window configuration")
    parser.add_argument("--only", help="run only these sections (comma-separated keys: matmul, ours, official, a, b, "
                                       "vae, cudnn, fp8, fp8mm, c, gguf, d)")
    parser.add_argument("--peak-tflops", type=float, help="dense bf16 peak of this GPU (default: from its name)")
    parser.add_argument("--deadline-s", type=float, default=440.0, help="skip sections that would end later")
    parser.add_argument("--no-compile", action="store_true", help="leave torch.compile out of (c)")
    parser.add_argument("--tiny", action="store_true", help="toy sizes: every path in seconds (tests, CPU)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return parser.parse_args(argv)


def reserve_for(sections: list, index: int) -> float:
    """Seconds kept for later sections when deciding on section `index`: an optional row runs only if
    every later row that a target reads still fits after it; a required row keeps nothing back."""
    if not sections[index].optional:
        return 0.0
    return sum(section.estimate for section in sections[index + 1:] if not section.optional)


def run_sections(bench: Bench, report: Report, sections: list) -> None:
    for index, section in enumerate(sections):
        if not bench.time_left(section.estimate, reserve_for(sections, index)):
            report.skipped(section.name, "the deadline (--deadline-s) is near")
            continue
        try:
            report.add(section.run())
        except Exception as exc:  # one failed section must not lose the others' figures
            report.skipped(section.name, f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
        gc.collect()
        if bench.device.type == "cuda":
            torch.cuda.empty_cache()


def main() -> None:
    args = parse()
    warnings.filterwarnings("ignore", category=FutureWarning)  # the official code's torch.cuda.amp calls
    started = time.perf_counter()
    bench = Bench(args, started)
    report = Report(bench)
    report.header()
    run_sections(bench, report, bench.sections())
    report.summary()
    print(f"\ntotal {time.perf_counter() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
