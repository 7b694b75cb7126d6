"""End-to-end benchmark: time per stage (audio, encoders, DiT steps, VAE) of a two-window run,
and the peak RSS, for the tiny model and a medium CPU config.

    python benchmarks/bench_pipeline.py [--configs tiny medium] [--threads 2]

Random weights at the stated sizes; each config runs in a fresh process so peak RSS is its own.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections import defaultdict

CONFIGS = {
    # DiT, VAE base width, wav2vec (layers, hidden), umt5 (d_model, layers), CLIP (hidden, layers), image, window
    "tiny": dict(dit=dict(dim=32, ffn_dim=64, num_heads=2, num_layers=2), vae_dim=8, wav2vec=(2, 32),
                 t5=(16, 2), clip=(32, 2), size=(64, 96), window=17, motion=5, steps=4),
    "medium": dict(dit=dict(dim=512, ffn_dim=2048, num_heads=8, num_layers=4), vae_dim=32, wav2vec=(12, 768),
                   t5=(512, 4), clip=(512, 8), size=(240, 416), window=33, motion=9, steps=4),
}


class Timed:
    """Proxy that adds the wall time of calls to `totals[stage]`."""

    def __init__(self, target, stage: str, totals: dict, methods=("__call__",)):
        self._target, self._stage, self._totals, self._methods = target, stage, totals, methods

    def __getattr__(self, name):
        attr = getattr(self._target, name)
        if name not in self._methods:
            return attr

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return attr(*args, **kwargs)
            finally:
                self._totals[self._stage] += time.perf_counter() - start
        return timed

    def __call__(self, *args, **kwargs):
        return self.__getattr__("__call__")(*args, **kwargs)


def _models(cfg: dict):
    import dataclasses
    import tempfile

    import torch
    from safetensors.torch import save_file
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    from comfyui_multitalk.models import load_dit
    from comfyui_multitalk.models.audio import load_wav2vec
    from comfyui_multitalk.models.dit.tiny import random_dit_state_dict, tiny_dit_config
    from comfyui_multitalk.models.encoders.tiny import tiny_vae_state
    from comfyui_multitalk.models.encoders.vae_loader import load_vae

    from comfyui_multitalk.models.encoders import load_clip_vision, load_text_encoder
    from comfyui_multitalk.models.encoders.tiny import tiny_clip_state, tiny_sentencepiece, tiny_text_encoder_state

    layers, hidden = cfg["wav2vec"]
    folder = tempfile.mkdtemp()
    (d_model, t5_layers), (clip_hidden, clip_layers) = cfg["t5"], cfg["clip"]
    spiece = torch.frombuffer(bytearray(tiny_sentencepiece()), dtype=torch.uint8)
    save_file({**tiny_text_encoder_state(d_model=d_model, layers=t5_layers, heads=4, d_ff=2 * d_model),
               "spiece_model": spiece}, f"{folder}/t5.safetensors")
    save_file(tiny_clip_state(hidden=clip_hidden, layers=clip_layers, heads=4, image=224, intermediate=2 * clip_hidden),
              f"{folder}/clip.safetensors")
    Wav2Vec2Model(Wav2Vec2Config(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=max(2, hidden // 64),
                                 intermediate_size=4 * hidden, conv_bias=False, feat_extract_norm="group",
                                 do_stable_layer_norm=False)).save_pretrained(folder)
    save_file(tiny_vae_state(base_dim=cfg["vae_dim"]), f"{folder}/vae.safetensors")
    dit_cfg = dataclasses.replace(tiny_dit_config(), **cfg["dit"], audio_feature_dim=layers * hidden,
                                  text_dim=d_model, clip_dim=clip_hidden, text_len=64)
    dit = load_dit(random_dit_state_dict(dit_cfg), num_heads=cfg["dit"]["num_heads"], text_len=64)
    encoders = (load_text_encoder(f"{folder}/t5.safetensors", dtype=torch.float32),
                load_clip_vision(f"{folder}/clip.safetensors", num_heads=4))
    return dit, load_vae(f"{folder}/vae.safetensors"), load_wav2vec(folder), encoders, torch


def run(config: str, threads: int) -> dict:
    from comfyui_multitalk.models.audio import build_speaker_audio
    from comfyui_multitalk.models.sampling.generate import GenerationInputs, SamplerSettings, VideoGenerator

    cfg = CONFIGS[config]
    totals = defaultdict(float)
    start = time.perf_counter()
    dit, vae, wav2vec, (t5, clip), torch = _models(cfg)
    torch.set_num_threads(threads)
    totals["load (random weights)"] = time.perf_counter() - start
    frames = cfg["window"] + (cfg["window"] - cfg["motion"]) // 2  # two windows
    t = torch.arange(int(frames / 25 * 16000)) / 16000
    tracks = [(0.3 * torch.sin(2 * torch.pi * f * t)).numpy() for f in (140.0, 210.0)]
    start = time.perf_counter()
    audio = build_speaker_audio(wav2vec, tracks, "parallel", 25.0, num_frames=frames)
    totals["audio (wav2vec)"] = time.perf_counter() - start
    h, w = cfg["size"]
    reference = torch.rand(h, w, 3)
    start = time.perf_counter()
    positive, negative = t5.encode("two people talk in a studio, warm light"), t5.encode("blurry, static")
    clip_features = clip.encode_image(reference[None]).penultimate_hidden_states
    totals["encoders (text, CLIP)"] = time.perf_counter() - start
    masks = torch.zeros(3, h // 8, w // 8)
    masks[0, :, : w // 16], masks[1, :, w // 16:] = 1, 1
    inputs = GenerationInputs(positive=positive[0], negative=negative[0], reference=reference,
                              clip_features=clip_features, audio_features=audio.features, masks=masks)
    settings = SamplerSettings(steps=cfg["steps"], window=cfg["window"], motion_frames=cfg["motion"], mode="multitalk")
    timed_dit = Timed(dit, "DiT steps", totals)
    timed_dit.parameters, timed_dit.compute_dtype = dit.parameters, dit.compute_dtype
    generator = VideoGenerator(timed_dit, Timed(vae, "VAE", totals, ("encode", "decode")), inputs, settings)
    start = time.perf_counter()
    result = generator.run()
    totals["sampling total"] = time.perf_counter() - start
    totals["other (planning, colour, glue)"] = totals["sampling total"] - totals["DiT steps"] - totals["VAE"]
    return dict(config=config, windows=len(result.plan.windows), frames=result.frame_count, size=f"{w}x{h}",
                steps=cfg["steps"], stages={k: round(v, 2) for k, v in totals.items()},
                peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run(args.child, args.threads)))
        return
    for config in args.configs:
        out = subprocess.check_output([sys.executable, __file__, "--child", config, "--threads", str(args.threads)],
                                      text=True)
        row = json.loads(out.strip().splitlines()[-1])
        print(f"{config}: {row['windows']} windows x {row['steps']} steps, {row['frames']} frames at {row['size']}, "
              f"peak RSS {row['peak_rss_mb']} MB")
        for stage, seconds in row["stages"].items():
            print(f"    {stage:32} {seconds:8.2f} s")


if __name__ == "__main__":
    main()
