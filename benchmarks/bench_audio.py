"""Time and peak memory of wav2vec2 feature extraction: this pack vs the official path.

Randomly initialised model of the real chinese-wav2vec2-base shape (12 layers, 768 hidden),
CPU, 2 threads. Each measurement runs in a fresh subprocess; memory is the rise of the
process's peak RSS over its RSS just before encoding (model and audio already in memory).

  official: eager attention, whole-clip CNN (what the official code does)
  pack:     SDPA attention, chunked CNN with whole-clip group-norm statistics

Usage: python benchmarks/bench_audio.py [--seconds 60 180] [--long 600]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

VARIANTS = {"official": ("eager", None), "pack": ("sdpa", "default")}


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field):
                return int(line.split()[1])
    raise RuntimeError(field)


def child(variant: str, seconds: float, out_path: str) -> None:
    import numpy as np
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    from comfyui_multitalk.models.audio import Wav2VecEncoder, encode_track
    from comfyui_multitalk.models.audio.wav2vec_features import CNN_CHUNK_FRAMES

    torch.set_num_threads(2)
    torch.manual_seed(0)
    attn, chunk = VARIANTS[variant]
    config = Wav2Vec2Config(mask_time_prob=0.0)
    config._attn_implementation = attn
    encoder = Wav2VecEncoder(model=Wav2Vec2Model(config).eval(), do_normalize=True, source="random")
    rng = np.random.default_rng(0)
    n = int(seconds * 16000)
    speech = (rng.standard_normal(n) * np.abs(np.sin(np.arange(n) / 4000))).astype(np.float32)
    frames = int(n / 16000 * 25)
    encode_track(encoder, speech[:16000], 25)  # warm-up (allocator, kernels)
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")  # reset the peak-RSS counter
    base = _rss_kib("VmRSS:")
    start = time.perf_counter()
    features = encode_track(encoder, speech, frames, chunk_frames=CNN_CHUNK_FRAMES if chunk else None)
    elapsed = time.perf_counter() - start
    peak = _rss_kib("VmHWM:")
    if out_path:
        torch.save(features, out_path)
    print(json.dumps({"seconds": elapsed, "peak_gib": (peak - base) / 2**20, "shape": list(features.shape)}))


def run(variant: str, seconds: float, out_path: str = "") -> dict:
    cmd = [sys.executable, __file__, "--child", variant, str(seconds), out_path]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "2"})
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr else f"exit {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, nargs="*", default=[60, 180])
    parser.add_argument("--long", type=float, nargs="*", default=[600], help="lengths run with the pack path only")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], float(args.child[1]), args.child[2])
        return
    import torch

    print(f"{'audio':>7} {'path':>9} {'time s':>8} {'peak +GiB':>10}  max |diff| vs official")
    with tempfile.TemporaryDirectory() as tmp:
        for seconds in args.seconds:
            paths = {v: os.path.join(tmp, f"{v}_{seconds}.pt") for v in VARIANTS}
            results = {v: run(v, seconds, paths[v]) for v in VARIANTS}
            diff = ""
            if all("error" not in r for r in results.values()):
                diff = f"{(torch.load(paths['pack']) - torch.load(paths['official'])).abs().max().item():.2e}"
            for variant, r in results.items():
                _print_row(seconds, variant, r, diff if variant == "pack" else "")
        for seconds in args.long:
            _print_row(seconds, "pack", run("pack", seconds), "")


def _print_row(seconds: float, variant: str, r: dict, diff: str) -> None:
    if "error" in r:
        print(f"{seconds:>6g}s {variant:>9}  failed: {r['error']}")
    else:
        print(f"{seconds:>6g}s {variant:>9} {r['seconds']:>8.1f} {r['peak_gib']:>10.2f}  {diff}")


if __name__ == "__main__":
    main()
