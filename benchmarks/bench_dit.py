"""DiT forward benchmark: time and peak memory per config, 1 and 2 speakers, side by side with
the official MultiTalk model when its checkout is given.

    python benchmarks/bench_dit.py                                  # ours only
    python benchmarks/bench_dit.py --official /path/to/MultiTalk    # ours vs official, same weights/inputs

Each measurement runs in a fresh subprocess: peak memory is the growth of the process's peak
RSS during the forward (weights and inputs are allocated before the baseline is read).
The official model is imported through ../shared/tools/official_multitalk_cpu.py.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

CONFIGS = {
    # name: (model kwargs in the official constructor's names, latent (T, H, W))
    "tiny": (dict(dim=32, ffn_dim=64, num_heads=2, num_layers=2, text_dim=16, text_len=16, freq_dim=16,
                  intermediate_dim=8, output_dim=32, context_tokens=4), (3, 8, 12)),
    "medium": (dict(dim=512, ffn_dim=2048, num_heads=8, num_layers=4, text_dim=4096, text_len=512, freq_dim=256,
                    intermediate_dim=512, output_dim=768, context_tokens=32), (6, 60, 104)),
}
COMMON = dict(model_type="i2v", patch_size=(1, 2, 2), in_dim=36, out_dim=16, audio_window=5, vae_scale=4,
              norm_input_visual=True, norm_output_audio=True)
SHARED = Path(__file__).resolve().parents[2] / "shared"


def _rss_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _inputs(kwargs: dict, latent: tuple, speakers: int, seed: int = 0):
    import torch

    g = torch.Generator().manual_seed(seed)
    t, h, w = latent
    frames = 4 * (t - 1) + 1
    masks = torch.zeros(speakers + 1, h, w)
    if speakers == 1:
        masks[:] = 1
    else:
        bounds = torch.linspace(0, w, speakers + 1).long()
        for s in range(speakers):
            masks[s, h // 8: h - h // 8, bounds[s] + 1: bounds[s + 1] - 1] = 1
        masks[-1] = (masks[:-1].sum(0) == 0).float()
    return dict(
        x=torch.randn(16, t, h, w, generator=g), y=torch.randn(20, t, h, w, generator=g),
        t=torch.tensor([500.0]), context=torch.randn(min(kwargs["text_len"], 40), kwargs["text_dim"], generator=g),
        clip_fea=torch.randn(1, 257, 1280, generator=g),
        audio=torch.randn(speakers, frames, 5, 12, 768, generator=g), masks=masks)


def _official_model(checkout: str, kwargs: dict):
    sys.path.insert(0, str(SHARED / "tools"))
    from official_multitalk_cpu import load_reference

    model = load_reference(checkout).WanModel(**COMMON, **kwargs)
    model.disable_teacache()
    return model


def measure(impl: str, config: str, speakers: int, checkout: str | None, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    kwargs, latent = CONFIGS[config]
    torch.manual_seed(0)
    reference = _official_model(checkout, kwargs) if checkout else None
    if impl == "official":
        model = reference.eval()
    else:
        from comfyui_multitalk.models import load_dit

        if reference is None:
            from comfyui_multitalk.models.dit.config import DiTConfig
            from comfyui_multitalk.models.dit.model import MultiTalkDiT

            state = MultiTalkDiT(_our_config(kwargs)).state_dict()
        else:
            state = reference.state_dict()
            del reference
        model = load_dit(state, dtype="fp32", num_heads=kwargs["num_heads"], text_len=kwargs["text_len"])
    inp = _inputs(kwargs, latent, speakers)
    tokens = latent[0] * (latent[1] // 2) * (latent[2] // 2)
    base = _rss_peak_mb()
    start = time.perf_counter()
    with torch.no_grad():
        if impl == "official":
            out = model([inp["x"]], inp["t"], [inp["context"]], tokens, clip_fea=inp["clip_fea"], y=[inp["y"]],
                        audio=inp["audio"], ref_target_masks=inp["masks"])[0]
        else:
            out = model(inp["x"][None], inp["t"], inp["context"][None], inp["clip_fea"], inp["y"][None],
                        audio=inp["audio"][None], ref_masks=inp["masks"])[0]
    seconds = time.perf_counter() - start
    return dict(impl=impl, config=config, speakers=speakers, seconds=round(seconds, 3),
                peak_mb=round(_rss_peak_mb() - base, 1), checksum=float(out.double().abs().mean()))


def _our_config(kwargs: dict):
    from comfyui_multitalk.models.dit.config import DiTConfig

    return DiTConfig(dim=kwargs["dim"], ffn_dim=kwargs["ffn_dim"], num_heads=kwargs["num_heads"],
                     num_layers=kwargs["num_layers"], text_dim=kwargs["text_dim"], text_len=kwargs["text_len"],
                     freq_dim=kwargs["freq_dim"], audio_intermediate_dim=kwargs["intermediate_dim"],
                     audio_token_dim=kwargs["output_dim"], audio_tokens=kwargs["context_tokens"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=["tiny", "medium"], choices=list(CONFIGS))
    parser.add_argument("--official", default=os.environ.get("MULTITALK_OFFICIAL_DIR"),
                        help="checkout of MeiGen-AI/MultiTalk for the side-by-side figures")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1, help="alternating runs per implementation")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        impl, config, speakers = args.child.split(":")
        print(json.dumps(measure(impl, config, int(speakers), args.official, args.threads)))
        return
    impls = ["ours"] + (["official"] if args.official else [])
    print(f"{'config':8} {'spk':>3} {'impl':9} {'seconds':>8} {'peak MB':>8}  ratio(time, mem)")
    for config in args.configs:
        for speakers in (1, 2):
            rows = {impl: [] for impl in impls}
            for _ in range(args.repeats):
                for impl in impls:  # alternate so background load hits both alike
                    cmd = [sys.executable, __file__, "--child", f"{impl}:{config}:{speakers}",
                           "--threads", str(args.threads)] + (["--official", args.official] if args.official else [])
                    rows[impl].append(json.loads(subprocess.check_output(cmd, text=True).strip().splitlines()[-1]))
            best = {impl: min(r, key=lambda x: x["seconds"]) for impl, r in rows.items()}
            for impl, row in best.items():
                ratio = ""
                if impl == "ours" and "official" in best:
                    off = best["official"]
                    ratio = f"  {row['seconds'] / off['seconds']:.2f}x, {row['peak_mb'] / max(off['peak_mb'], 1e-6):.2f}x"
                print(f"{config:8} {speakers:>3} {impl:9} {row['seconds']:8.2f} {row['peak_mb']:8.0f}{ratio}")
            if "official" in best:
                print(f"{'':8} {'':>3} outputs agree: {abs(best['ours']['checksum'] - best['official']['checksum']) < 1e-4}")


if __name__ == "__main__":
    main()
