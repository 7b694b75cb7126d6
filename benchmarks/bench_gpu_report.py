"""Printing bench_gpu.py's figures as they come, then the windows and the targets side by side."""
from __future__ import annotations

from typing import Optional

import torch

from gpu_flops import Shapes, forward_flops

PETA, TERA = 1e15, 1e12


class Report:
    def __init__(self, bench):
        self.bench = bench

    def _print(self, text: str = "") -> None:
        print(text, flush=True)

    def header(self) -> None:
        b = self.bench
        cfg, w = b.cfg, b.window
        self._print("MultiTalk DiT GPU benchmark (random weights at the stated shapes; no model files read)")
        memory = (f", {torch.cuda.get_device_properties(b.device).total_memory / 2**30:.0f} GiB, cc "
                  f"{'.'.join(map(str, torch.cuda.get_device_capability(b.device)))}" if b.device.type == "cuda" else "")
        peak = f"dense bf16 peak {b.peak_tflops:g} TFLOP/s (data sheet; --peak-tflops overrides)" if b.peak_tflops \
            else "dense bf16 peak unknown (give --peak-tflops)"
        self._print(f"device: {b.device_name}{memory}; torch {torch.__version__}; {peak}")
        tokens = Shapes(w.frames, w.height, w.width, w.speakers, cfg.text_len)
        t, h, ww = tokens.grid
        self._print(f"shapes: dim {cfg.dim}, {cfg.num_layers} blocks, {cfg.num_heads} heads; {w.height * 8}x{w.width * 8}, "
                    f"{w.video_frames} frames -> {t} x {h} x {ww} = {tokens.tokens} tokens; {w.speakers} speakers; "
                    f"text {cfg.text_len} + 257 CLIP tokens")
        parts = forward_flops(cfg, tokens)
        listed = " + ".join(f"{name} {value / PETA:.3f}" for name, value in parts.items())
        self._print(f"FLOPs of one forward (one pass, {w.speakers} speakers): {sum(parts.values()) / PETA:.3f} PFLOP = "
                    f"{listed}")
        self._print("  (2 FLOPs per multiply-add of every matrix product and attention product, from the shapes; "
                    "norms, RoPE, softmax and other elementwise work not counted)")
        self._print(f"attention: PyTorch's SDPA picks {b.sdpa_choice} for one pass's self-attention "
                    "(the default 'auto' backend)")
        self._print(f"timing: best of {b.args.repeats} calls after one warm-up; a call runs all guidance passes of a "
                    "step as one batch; window = steps x call + VAE encode and decode (measured), not a full run")
        self._print()
        self._print(f"{'measurement':44} {'s/call':>8} {'s/pass':>8} {'TFLOP/s':>8} {'% peak':>7} {'peak GiB':>9}  notes")

    def add(self, result) -> None:
        if result is None:
            return
        b = self.bench
        if result.kind == "matmul":
            share = f"{100 * b.matmul_tflops / b.peak_tflops:6.1f}%" if b.peak_tflops else "    n/a"
            self._print(f"{result.name:44} {result.call_seconds:8.4f} {'':>8} {b.matmul_tflops:8.1f} {share:>7} "
                        f"{'':>9}  {'; '.join(result.notes)}")
            return
        if result.kind == "vae":
            self._print(f"{result.name:44} {result.call_seconds:8.2f} {'':>8} {'':>8} {'':>7} "
                        f"{result.peak_gb:9.1f}  {'; '.join(result.notes)}")
            return
        tflops = result.flops / result.call_seconds / TERA
        share = f"{100 * tflops / b.peak_tflops:6.1f}%" if b.peak_tflops else "    n/a"
        notes = list(result.notes)
        official = b.results.get("official bf16")
        if result.name.startswith("ours") and official is not None:
            notes.insert(0, f"{result.call_seconds / official.call_seconds:.2f}x the official's time")
        if result.kind == "window":
            notes.insert(0, f"{result.steps} steps x {result.passes} passes")
        self._print(f"{result.name:44} {result.call_seconds:8.3f} {result.call_seconds / result.passes:8.3f} "
                    f"{tflops:8.1f} {share:>7} {result.peak_gb:9.1f}  {'; '.join(notes)}")

    def skipped(self, name: str, why: str) -> None:
        self._print(f"{name:44} skipped: {why}")

    def _vae(self, capped: bool) -> Optional[float]:
        results = self.bench.results
        key = [k for k in results if k.endswith(" VAE")] if capped else ["VAE encode + decode"]
        found = [results[k] for k in key if k in results]
        return found[0].call_seconds if found else None

    def summary(self) -> None:
        b, results = self.bench, self.bench.results
        for note in b.skip_notes:
            self._print(note)
        self._print()
        self._print(f"windows ({b.window.video_frames} frames, {b.window.height * 8}x{b.window.width * 8}, "
                    f"{b.window.speakers} speakers): steps x call + VAE")
        windows = {}
        for name, result in results.items():
            if result.kind != "window":
                continue
            vae = self._vae(capped=name.startswith("(d)"))
            model = result.steps * result.call_seconds
            windows[name[:3]] = model + (vae or 0.0)
            vae_text = f" + VAE {vae:.1f} s" if vae is not None else " (VAE not measured)"
            self._print(f"  {name:42} {result.steps} x {result.call_seconds:.2f} s{vae_text} = {windows[name[:3]]:.1f} s")
        self._targets(windows)

    def _targets(self, windows: dict) -> None:
        b, results = self.bench, self.bench.results
        self._print("targets (H200):")
        bf16 = [r for name, r in results.items() if name.startswith("ours bf16")]
        ours = min(bf16, key=lambda r: r.call_seconds) if bf16 else None
        official = results.get("official bf16")
        if ours is not None:
            self._print(f"  (our fastest bf16 forward: {ours.name})")
        if ours is not None and b.peak_tflops:
            share = ours.flops / ours.call_seconds / TERA / b.peak_tflops
            self._print(f"  forward >= 60% of dense bf16 peak: {100 * share:.0f}%  {self._mark(share >= 0.6)}")
        if ours is not None and official is not None:
            ratio = ours.call_seconds / official.call_seconds
            self._print(f"  forward <= 0.8x the official's: {ratio:.2f}x  {self._mark(ratio <= 0.8)}")
        self._floor(windows)
        for key in ("(b)", "(c)"):
            if key in windows:
                self._print(f"  {key} 4-step window with audio guidance < 30 s: {windows[key]:.1f} s  "
                            f"{self._mark(windows[key] < 30)}")
        if "(d)" in windows and "(b)" in windows:
            ratio = windows["(d)"] / windows["(b)"]
            self._print(f"  (d) capped window <= 1.5x (b): {ratio:.2f}x  {self._mark(ratio <= 1.5)}")

    def _floor(self, windows: dict) -> None:
        """(a) against its compute floor: its FLOPs at the measured matrix-product rate (the issue's
        definition), or at the data sheet's peak when the rate was not measured."""
        b, a = self.bench, self.bench.results.get("(a) official settings")
        rate, source = (b.matmul_tflops, "the measured matmul rate") if b.matmul_tflops else (b.peak_tflops, "peak")
        if a is None or not rate:
            return
        floor = a.steps * a.flops / (rate * TERA)
        vae = self._vae(False) or 0.0
        ratio = windows["(a)"] / (floor + vae)
        self._print(f"  (a) within 1.3x of its compute floor: {windows['(a)']:.0f} s vs floor {floor:.0f} s "
                    f"({a.steps * a.flops / PETA:.0f} PFLOP at {source}, {rate:.0f} TFLOP/s) + VAE {vae:.0f} s = "
                    f"{ratio:.2f}x  {self._mark(ratio <= 1.3)}")

    @staticmethod
    def _mark(ok: bool) -> str:
        return "met" if ok else "NOT met"

