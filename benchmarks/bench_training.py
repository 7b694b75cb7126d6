"""Audio-adapter training benchmark: seconds per optimizer step and peak memory per config.

    python benchmarks/bench_training.py                 # tiny and medium, CPU
    python benchmarks/bench_training.py --steps 5 --configs medium

Each measurement runs in a fresh subprocess on a synthetic cache (models/training/tiny.py):
peak memory is the growth of the process's peak RSS over the training steps (the model and
the cache exist before the baseline is read). On a GPU it also prints torch's peak allocation.
The first step (allocator and kernel warm-up) is left out of the time.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

CONFIGS = {
    # name: (DiT sizes, frames per window, latent (h, w))
    "tiny": (dict(dim=32, ffn_dim=64, num_heads=2, num_layers=2, text_dim=32, text_len=32, clip_dim=32,
                  audio_feature_dim=128, audio_intermediate_dim=8, audio_token_dim=32, audio_tokens=4),
             9, (20, 20)),
    # Released adapter widths (wav2vec 12 x 768, 512 hidden, 32 tokens of 768) on a narrow backbone.
    "medium": (dict(dim=256, ffn_dim=1024, num_heads=2, num_layers=4, text_dim=4096, text_len=512, clip_dim=1280,
                    audio_feature_dim=12 * 768, audio_intermediate_dim=512, audio_token_dim=768, audio_tokens=32),
               17, (30, 52)),
}


def _rss_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(name: str, steps: int, checkpointing: bool) -> dict:
    import torch

    from comfyui_multitalk.models.dit.keys import is_audio_key
    from comfyui_multitalk.models.dit.config import DiTConfig
    from comfyui_multitalk.models.dit.loading import load_dit
    from comfyui_multitalk.models.dit.tiny import random_dit_state_dict
    from comfyui_multitalk.models.training import AdapterTrainer, TrainHooks, TrainSettings, load_cache
    from comfyui_multitalk.models.training.tiny import write_synthetic_cache

    sizes, frames, latent = CONFIGS[name]
    config = DiTConfig(**sizes, freq_dim=256 if sizes["dim"] >= 256 else 16)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = load_dit(random_dit_state_dict(config), num_heads=config.num_heads, text_len=config.text_len,
                     device=device)
    folder = tempfile.mkdtemp(prefix="bench_training_")
    layers = 12 if config.audio_feature_dim == 12 * 768 else 2
    cache = load_cache(write_synthetic_cache(folder, windows=2, frames=frames, latent_size=latent, config=config,
                                             audio_layers=layers))
    times: list[float] = []
    hooks = TrainHooks(progress=lambda n, message: times.append(time.perf_counter()))
    settings = TrainSettings(steps=steps + 1, save_every=0, gradient_checkpointing=checkpointing, save_dtype="fp32")
    baseline = _rss_peak_mb()
    AdapterTrainer(model, cache, settings, os.path.join(folder, "adapter"), hooks).run(resume=False)
    tokens = (frames - 1) // 4 + 1
    return {"config": name, "checkpointing": checkpointing, "device": device,
            "tokens": tokens * latent[0] * latent[1] // 4,
            "trainable_M": sum(p.numel() for k, p in model.state_dict().items() if is_audio_key(k)) / 1e6,
            "s_per_step": (times[-1] - times[0]) / steps,
            "peak_rss_growth_mb": _rss_peak_mb() - baseline,
            "cuda_peak_mb": torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="*", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--steps", type=int, default=3, help="timed steps per measurement (after one warm-up)")
    parser.add_argument("--child", nargs=3, metavar=("CONFIG", "STEPS", "CHECKPOINTING"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        os.environ["MULTITALK_QUIET"] = "1"
        print(json.dumps(measure(args.child[0], int(args.child[1]), args.child[2] == "1")))
        return
    print(f"{'config':8} {'ckpt':5} {'device':6} {'tokens':>7} {'train M':>8} {'s/step':>8} {'peak MB':>9}")
    for name in args.configs:
        for checkpointing in (True, False):
            out = subprocess.run([sys.executable, __file__, "--child", name, str(args.steps),
                                  "1" if checkpointing else "0"], capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            peak = r["cuda_peak_mb"] if r["cuda_peak_mb"] is not None else r["peak_rss_growth_mb"]
            print(f"{r['config']:8} {str(r['checkpointing']):5} {r['device']:6} {r['tokens']:>7} "
                  f"{r['trainable_M']:>8.2f} {r['s_per_step']:>8.3f} {peak:>9.1f}")


if __name__ == "__main__":
    main()
