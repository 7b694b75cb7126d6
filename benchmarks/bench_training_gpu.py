"""A real training step at 14B shapes with random weights: seconds per step and peak GPU memory.

    python benchmarks/bench_training_gpu.py                 # 3 plans, 2 steps each, under 8 minutes on an H200
    python benchmarks/bench_training_gpu.py --plans bf16+park+8bit --steps 3
    python benchmarks/bench_training_gpu.py --config tiny   # the same code on a tiny model (CPU smoke run)

Each plan runs in its own process (so peaks do not mix): the released 14B config with random
weights (bf16, or fp8 linears for the backbone), a synthetic cache of 81-frame 480p windows with
2 speakers, and AdapterTrainer's own loop (checkpointed blocks, bf16 autocast, continuation and
zero-audio tasks). The second step is the steady state (the optimizer states exist from the
first). Nothing is saved: the run stops after the last timed step. The meta-device accounting of
the same plans is benchmarks/bench_training_memory.py.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pack_path  # noqa: E402,F401  (this checkout's comfyui_multitalk, also on the bare device copy)

PLANS = {  # name: (backbone, optimizer, offload activations)
    "bf16+park+8bit": ("bf16", "adamw8bit", False),
    "bf16+park+offload": ("bf16", "adamw", True),
    "bf16+park+8bit+offload": ("bf16", "adamw8bit", True),
    "fp8+park": ("fp8", "adamw", False),
}
CONFIGS = {  # name: (DiT overrides, frames, latent (h, w), speakers)
    "14b": ({}, 81, (60, 104), 2),
    "tiny": (dict(dim=32, ffn_dim=64, num_heads=2, num_layers=2, text_dim=32, text_len=32, clip_dim=32,
                  audio_feature_dim=128, audio_intermediate_dim=8, audio_token_dim=32, audio_tokens=4, freq_dim=16),
             9, (4, 4), 2),
}


class _Stop(Exception):
    """Ends the run after the timed steps (no final save of a 30 GB resume state)."""


def _random_model(overrides: dict, backbone: str, device):
    import torch

    from comfyui_multitalk.models.dit.keys import is_audio_key
    from comfyui_multitalk.models.dit.config import DiTConfig
    from comfyui_multitalk.models.weights.linears import swap_in_quantized_linears
    from comfyui_multitalk.models.dit.model import MultiTalkDiT

    config = DiTConfig(**overrides)
    with torch.device("meta"):
        model = MultiTalkDiT(config)
    if backbone == "fp8":
        keys = {k for k, v in model.state_dict().items() if k.startswith("blocks.") and k.endswith(".weight")
                and v.dim() == 2 and not is_audio_key(k)}
        swap_in_quantized_linears(model, dict.fromkeys(keys, "fp8"), torch.bfloat16)
    model = model.to_empty(device=device)
    generator = torch.Generator(device=device).manual_seed(0)
    with torch.no_grad():
        for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
            if tensor.dtype in (torch.float8_e4m3fn,):
                tensor.copy_((0.02 * torch.randn(tensor.shape, generator=generator, device=device)).to(tensor.dtype))
            elif name.endswith("scale_weight"):
                tensor.fill_(1.0)
            elif tensor.dim() <= 1 and "norm" in name:
                tensor.fill_(1.0)
            else:
                tensor.copy_(0.02 * torch.randn(tensor.shape, generator=generator, device=device))
    compute = torch.bfloat16 if device.type == "cuda" else torch.float32
    for module in model.modules():  # fp8 linears stay fp8; everything else computes in bf16
        for key, value in list(module._parameters.items()):
            if value is not None and value.dtype == torch.float32:
                module._parameters[key] = torch.nn.Parameter(value.to(compute), requires_grad=False)
    return model


def measure(plan: str, config: str, steps: int) -> dict:
    import torch

    from comfyui_multitalk.models.training import AdapterTrainer, TrainHooks, TrainSettings, load_cache
    from comfyui_multitalk.models.training.tiny import write_synthetic_cache

    backbone, optimizer, offload = PLANS[plan]
    overrides, frames, latent, speakers = CONFIGS[config]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    started = time.perf_counter()
    model = _random_model(overrides, backbone, device)
    setup = time.perf_counter() - started
    folder = tempfile.mkdtemp(prefix="bench_training_gpu_")
    layers = 12 if model.config.audio_feature_dim == 12 * 768 else 2
    cache = load_cache(write_synthetic_cache(folder, windows=2, frames=frames, latent_size=latent, speakers=speakers,
                                             config=model.config, audio_layers=layers))
    times: list[float] = []
    peaks: list[float] = []

    def progress(n: int, message: str) -> None:
        times.append(time.perf_counter())
        if device.type == "cuda":
            peaks.append(torch.cuda.max_memory_allocated() / 2**30)
        if len(times) >= steps:
            raise _Stop()

    settings = TrainSettings(steps=steps + 1, batch_size=1, save_every=0, gradient_checkpointing=True,
                             offload_activations=offload, optimizer=optimizer, autocast="auto" if device.type ==
                             "cuda" else "off", zero_audio_share=0.0, continuation_share=0.5, warmup_steps=0)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    before = time.perf_counter()
    try:
        AdapterTrainer(model, cache, settings, os.path.join(folder, "adapter"), TrainHooks(progress=progress)).run()
    except _Stop:
        pass
    steps_s = [b - a for a, b in zip([before] + times[:-1], times)]
    import comfyui_multitalk

    return {"plan": plan, "config": config, "code": os.path.dirname(os.path.realpath(comfyui_multitalk.__file__)), "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
            "setup_s": setup, "step_s": steps_s, "peak_gib": peaks,
            "weights_gib": sum(p.numel() * p.element_size() for p in model.parameters()) / 2**30}


def _available(plan: str) -> bool:
    import importlib.util

    return PLANS[plan][1] != "adamw8bit" or importlib.util.find_spec("bitsandbytes") is not None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plans", nargs="*", default=["bf16+park+8bit", "bf16+park+offload", "fp8+park"],
                        choices=list(PLANS))
    parser.add_argument("--config", default="14b", choices=list(CONFIGS))
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--timeout", type=int, default=140, help="seconds per plan")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.config, args.steps)))
        return
    print(f"{'plan':24} {'device':28} {'setup s':>8} {'step s (each)':>22} {'peak GiB (each step)':>24}")
    codes: set[str] = set()
    for plan in args.plans:
        if not _available(plan):
            print(f"{plan:24} skipped: pip install bitsandbytes for the 8-bit optimizer")
            continue
        try:
            done = subprocess.run([sys.executable, __file__, "--child", plan, "--config", args.config, "--steps",
                                   str(args.steps)], capture_output=True, text=True, timeout=args.timeout)
        except subprocess.TimeoutExpired:
            print(f"{plan:24} did not finish in {args.timeout} s")
            continue
        if done.returncode:
            tail = (done.stderr.strip().splitlines() or ["?"])[-1]
            print(f"{plan:24} failed: {tail[:160]}")
            continue
        r = json.loads(done.stdout.strip().splitlines()[-1])
        steps = " ".join(f"{s:.2f}" for s in r["step_s"])
        peaks = " ".join(f"{p:.1f}" for p in r["peak_gib"]) or "-"
        print(f"{plan:24} {r['device'][:28]:28} {r['setup_s']:>8.1f} {steps:>22} {peaks:>24}")
        codes.add(r["code"])
    print("code: " + ", ".join(sorted(codes)))  # the checkout the plans ran (the device runs a bare copy)


if __name__ == "__main__":
    main()
