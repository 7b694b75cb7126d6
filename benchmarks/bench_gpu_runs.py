"""The measurements of bench_gpu.py, one section each, in the order they run."""
from __future__ import annotations

import functools
import gc
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch

from comfyui_multitalk.models.dit.block_swap import BlockSwap
from comfyui_multitalk.models.dit.config import DiTConfig
from comfyui_multitalk.models.dit.placement import DiTPlacement
from comfyui_multitalk.models.dit.runtime import RuntimeOptions, with_runtime
from comfyui_multitalk.models.dit.tiny import tiny_dit_config
from bench_cache import cache_plan, reuse_blocks
from gpu_flops import Shapes, dense_bf16_peak, forward_flops
from gpu_setup import PASSES, Window, fp8_model, gguf_q8_model, pass_inputs, peak_gb, random_state, random_vae, \
    reset_peak, synchronize, timed


@dataclass
class Result:
    kind: str  # "forward" | "window" | "vae"
    name: str
    call_seconds: float  # one model call (all its passes) or the VAE work
    passes: int = 1
    flops: float = 0.0  # FLOPs of one call
    peak_gb: float = float("nan")
    steps: int = 0
    notes: list[str] = field(default_factory=list)


@dataclass
class Section:
    key: str  # for --only
    name: str
    estimate: float  # seconds it may take on an H200
    run: Callable[[], Optional[Result]]
    optional: bool = False  # no target reads it: under the deadline it yields to the sections after it


class Bench:
    def __init__(self, args, started: float):
        self.args, self.started = args, started
        self.device = torch.device(args.device)
        if args.tiny:
            self.cfg = tiny_dit_config(num_layers=3, dim=32, num_heads=2)
            self.window = Window(frames=2, height=4, width=8)
        else:
            self.cfg = DiTConfig()  # the released 14B sizes
            self.window = Window(frames=21, height=60, width=104)  # 81 frames at 480x832
        self.dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        name = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "CPU"
        self.device_name = name
        self.peak_tflops = args.peak_tflops or (dense_bf16_peak(name) if self.device.type == "cuda" else None)
        self.state: Optional[dict] = None
        self.models: dict[str, torch.nn.Module] = {}
        self.results: dict[str, Result] = {}
        self.vae = None
        self.outputs: dict[str, torch.Tensor] = {}
        self.skip_notes: list[str] = []  # sections that chose not to run, and why

    # --- helpers ----------------------------------------------------------------------------
    def time_left(self, estimate: float, reserve: float = 0.0) -> bool:
        """Whether a section of `estimate` seconds ends before the deadline with `reserve` seconds
        still left for the sections that must follow it."""
        return time.perf_counter() - self.started + estimate + reserve <= self.args.deadline_s or self.args.tiny

    def call_flops(self, passes: int) -> float:
        shapes = [Shapes(self.window.frames, self.window.height, self.window.width, n, self.cfg.text_len)
                  for _, n in PASSES[passes]]
        return sum(sum(forward_flops(self.cfg, s).values()) for s in shapes)

    def bf16(self) -> torch.nn.Module:
        if "bf16" not in self.models:
            from comfyui_multitalk.models import load_dit

            self.state = random_state(self.cfg, self.device, self.dtype)
            self.models["bf16"] = load_dit(self.state, dtype="bf16" if self.dtype == torch.bfloat16 else "fp32",
                                           device=self.device, num_heads=self.cfg.num_heads, text_len=self.cfg.text_len)
        return self.models["bf16"]

    def forward(self, name: str, model: torch.nn.Module, passes: int, kind: str = "forward",
                steps: int = 0) -> Result:
        args, kwargs = pass_inputs(self.cfg, self.window, passes, self.device)
        reset_peak(self.device)
        repeats = self.args.repeats if kind == "forward" else self.args.window_repeats
        seconds, first, out = timed(lambda: model(*args, **kwargs), self.device, 1, repeats)
        result = Result(kind, name, seconds, passes, self.call_flops(passes), peak_gb(self.device), steps)
        if first is not None and first > 2 * seconds:
            result.notes.append(f"first call {first:.1f} s")
        if name == "ours bf16":
            self.outputs["ours"] = out.float()
        self.results[name] = result
        return result

    # --- sections -----------------------------------------------------------------------------
    def sections(self) -> list[Section]:
        steps, passes = self.args.fast_steps, self.args.fast_passes
        cap = f"(d) (b) under {self.args.cap_gb:g} GB + block swap"
        found = [
            Section("matmul", "bf16 matrix product", 5, self.matmul),
            Section("ours", "ours bf16", 30, lambda: self.forward("ours bf16", self.bf16(), 1)),
            Section("official", "official bf16", 30, self.official),
            Section("a", "(a) official settings", 35, lambda: self.forward(
                "(a) official settings", self.bf16(), 3, "window", 40)),
            Section("b", "(b) distilled + audio guidance", 25, lambda: self.forward(
                "(b) distilled + audio guidance", self.bf16(), passes, "window", steps)),
            Section("vae", "VAE encode + decode", 45, self.vae_run),
            Section("cudnn", "ours bf16, cuDNN attention", 20, self.cudnn, optional=True),
            Section("fp8", "ours fp8 (bf16 products)", 25, lambda: self.forward(
                "ours fp8 (bf16 products)", self.fp8(), 1), optional=True),
            Section("fp8mm", "ours fp8 (fp8 products)", 15, lambda: self.forward(
                "ours fp8 (fp8 products)", self._with(self.fp8(), fp8_matmul=True), 1), optional=True),
            Section("c", "(c) (b) + compile + fp8 products", 150, self.compiled),
            Section("gguf", "ours GGUF Q8_0", 30, self.gguf, optional=True),
            Section("d", cap, 80, self.capped),
        ]
        if self.args.only:
            wanted = set(self.args.only.split(","))
            found = [section for section in found if section.key in wanted]
        return found

    def matmul(self) -> Result:
        """The bf16 matrix-product rate this GPU reaches (the compute floor's rate, next to the data sheet's)."""
        size = 8192 if self.device.type == "cuda" else 256
        a, b = (torch.randn(size, size, device=self.device, dtype=self.dtype) for _ in range(2))
        seconds, _, _ = timed(lambda: a @ b, self.device, 3, 10)
        result = Result("matmul", "bf16 matrix product", seconds, flops=2.0 * size ** 3)
        result.notes.append(f"{size}^3, random data, best of 10 after 3 warm-ups")
        self.results[result.name] = result
        return result

    @property
    def matmul_tflops(self) -> Optional[float]:
        """The measured bf16 matrix-product rate, once the "matmul" section ran."""
        found = self.results.get("bf16 matrix product")
        return found.flops / found.call_seconds / 1e12 if found else None

    def cudnn(self) -> Optional[Result]:
        """Our forward with cuDNN attention first, unless PyTorch's SDPA already picks it for these shapes."""
        if self.sdpa_choice == "CUDNN_ATTENTION":
            self.skip_notes.append("ours bf16, cuDNN attention: not run, SDPA already picks cuDNN (the 'ours bf16' row)")
            return None
        return self.forward("ours bf16, cuDNN attention", self._with(self.bf16(), attention="sdpa_cudnn"), 1)

    @functools.cached_property
    def sdpa_choice(self) -> str:
        """The kernel PyTorch's SDPA picks by default for the self-attention of one pass."""
        from torch.nn.attention import SDPBackend

        heads, head_dim = self.cfg.num_heads, self.cfg.dim // self.cfg.num_heads
        q = torch.empty(1, heads, self.window.tokens, head_dim, device=self.device, dtype=self.dtype)
        try:
            choice = int(torch._fused_sdp_choice(q, q, q))
        except Exception:  # a private function: absent or changed in this PyTorch
            return "unknown"
        names = {int(getattr(SDPBackend, n)): n for n in dir(SDPBackend) if n.isupper()}
        return names.get(choice, str(choice))

    def _with(self, model: torch.nn.Module, **options) -> torch.nn.Module:
        return with_runtime(model, RuntimeOptions(guidance_batch="batched", **options))

    def fp8(self) -> torch.nn.Module:
        if "fp8" not in self.models:
            self.bf16()
            self.models["fp8"] = fp8_model(self.state, self.cfg, self.device)
        return self.models["fp8"]

    def official(self) -> Optional[Result]:
        if not self.args.official:
            return None
        from official_dit import official_forward, official_model

        model = official_model(self.args.official, self.cfg, self.bf16().state_dict())
        args, kwargs = pass_inputs(self.cfg, self.window, 1, self.device)
        x, t, context, clip, y = args
        call = lambda: official_forward(model, x, t, context, clip, y, kwargs["audio"], kwargs["ref_masks"],  # noqa
                                        self.window.tokens)
        reset_peak(self.device)
        seconds, _, out = timed(call, self.device, 1, self.args.repeats)
        result = Result("forward", "official bf16", seconds, 1, self.call_flops(1), peak_gb(self.device))
        if "ours" in self.outputs:  # same weights, same inputs: the same velocity up to bf16 rounding
            theirs = out.float()
            diff = (self.outputs["ours"] - theirs).abs().max().item() / max(theirs.abs().max().item(), 1e-12)
            result.notes.append(f"max |ours - official| / max |official| = {diff:.1e}")
        self.results[result.name] = result
        return result

    def compiled(self) -> Result:
        cudnn = self.device.type == "cuda" and torch.cuda.get_device_capability(self.device) >= (9, 0)
        options = RuntimeOptions(fp8_matmul=True, compile=not self.args.no_compile, guidance_batch="batched",
                                 attention="sdpa_cudnn" if cudnn else "keep")
        name, start = "(c) (b) + compile + fp8 products", time.perf_counter()
        if self.args.fast_cache != "none":
            name += f" + {self.args.fast_cache}"
        try:
            model = with_runtime(self.fp8(), options)
            result = self.forward(name, model, self.args.fast_passes, "window", self.args.fast_steps)
        except Exception as exc:  # e.g. a compiler without cuDNN attention support: PyTorch's SDPA instead
            if options.attention == "keep":
                raise
            options = RuntimeOptions(fp8_matmul=True, compile=options.compile, guidance_batch="batched")
            start = time.perf_counter()
            model = with_runtime(self.fp8(), options)
            result = self.forward(name, model, self.args.fast_passes, "window", self.args.fast_steps)
            result.notes.append(f"cuDNN attention failed here ({type(exc).__name__}); PyTorch's SDPA used")
        spent = time.perf_counter() - start - result.call_seconds * self.args.window_repeats
        result.notes.append(f"attention {options.attention if options.attention != 'keep' else 'sdpa'}")
        result.notes.append(f"compile + warm-up call {spent:.0f} s (once per session)" if options.compile
                            else "not compiled (--no-compile)")
        if self.args.fast_cache != "none":
            self._with_cache(result, model)
        return result

    def _with_cache(self, result: Result, model: torch.nn.Module) -> None:
        """(c)'s figures as the step cache plans the steps: a step where every pass skips costs the
        light call (blocks replaced by the kept residual); the others the full call, as timed."""
        steps, passes = self.args.fast_steps, self.args.fast_passes
        full, light, note = cache_plan(self.args.fast_cache, self.args.fast_cache_threshold, steps, passes, model)
        args, kwargs = pass_inputs(self.cfg, self.window, passes, self.device)
        light_s, _, _ = timed(lambda: model(*args, **kwargs, shortcut=reuse_blocks), self.device, 1,
                              self.args.repeats)
        uncached = result.call_seconds
        result.call_seconds = (full * uncached + light * light_s) / steps  # mean per step, as the window sums
        result.flops *= full / steps
        result.notes.append(f"s/call = mean per step: {full} full calls + {light} light ({light_s:.3f} s, "
                            f"blocks skipped); uncached {uncached:.3f} s/step; {note}")

    def gguf(self) -> Result:
        self.models.pop("fp8", None)
        model = gguf_q8_model(self.bf16().state_dict(), self.cfg, self.device)
        try:
            return self.forward("ours GGUF Q8_0", model, 1)
        finally:
            del model

    def vae_run(self) -> Result:
        self.vae = random_vae(self.device, self.dtype, base_dim=8 if self.args.tiny else 96)
        return self._vae("VAE encode + decode", "VAE")

    def _vae(self, name: str, kind_name: str) -> Result:
        frames = self.window.video_frames
        pixels = torch.rand(frames, self.window.height * 8, self.window.width * 8, 3)
        latent = torch.randn(1, 16, self.window.frames, self.window.height, self.window.width)
        with torch.no_grad():
            self.vae.encode(pixels[:5])  # warm-up: the kernels of these sizes
            self.vae.decode(latent[:, :, :2])
            reset_peak(self.device)
            synchronize(self.device)
            start = time.perf_counter()
            self.vae.encode(pixels)
            synchronize(self.device)
            encode = time.perf_counter() - start
            start = time.perf_counter()
            self.vae.decode(latent)
            synchronize(self.device)
        result = Result("vae", name, encode + time.perf_counter() - start, peak_gb=peak_gb(self.device))
        tiled = self.vae.tiling_for(self.window.height * 8, self.window.width * 8)
        result.notes.append(f"encode {encode:.1f} s; {kind_name} tiles: {'none' if tiled is None else tiled.tile}")
        self.results[name] = result
        return result

    def capped(self) -> Result:
        model = self.bf16()
        for name in [n for n in self.models if n != "bf16"]:
            self.models.pop(name)
        name = f"(d) (b) under {self.args.cap_gb:g} GB + block swap"
        passes, steps = self.args.fast_passes, self.args.fast_steps
        tokens = self.window.tokens
        if self.device.type != "cuda":  # a stand-in: two blocks streamed through copies
            model.block_runner = BlockSwap(model.blocks, 2, self.device)
            try:
                return self.forward(name, model, passes, "window", steps)
            finally:
                model.block_runner = None
        placement = DiTPlacement(model, self.device, torch.device("cpu"), "auto")
        placement.unload()
        self.state = None
        from torch import _dynamo  # (a plain `import torch._dynamo` here would make `torch` local to this function)

        _dynamo.reset()  # compiled graphs of (c) keep its fp8 model alive otherwise
        gc.collect()
        torch.cuda.empty_cache()
        before_cap = torch.cuda.memory_allocated(self.device) / 2**30
        total = torch.cuda.get_device_properties(self.device).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, self.args.cap_gb * 2**30 / total), self.device)
        try:
            if hasattr(torch.cuda, "get_per_process_memory_fraction"):
                placement.load_for(tokens, passes)  # "auto", as users get it (it reads the cap)
            else:  # an older PyTorch cannot tell the cap: the same budget, computed here
                from comfyui_multitalk.models.dit.memory import RESERVE_BYTES, activation_bytes

                budget = (self.args.cap_gb * 2**30 - torch.cuda.memory_allocated(self.device) - RESERVE_BYTES
                          - activation_bytes(self.cfg, tokens, passes, self.dtype))
                placement.load(max(0.0, budget))
            from comfyui_multitalk.models.dit.batching import batch_size_for

            w = self.window
            group = batch_size_for(model, torch.empty(passes, 16, w.frames, w.height, w.width, device=self.device))
            result = self.forward(name, model, passes, "window", steps)
            result.notes.append(f"{placement.swapped()} of {len(model.blocks)} blocks streamed; "
                                f"passes run {group} at a time; {before_cap:.1f} GiB held before the cap")
            if self.vae is not None:
                self.vae.model.to("cpu")
                torch.cuda.empty_cache()
                self.vae.offload_device = torch.device("cpu")  # loaded for each call, beside the resident DiT
                self._vae(name + " VAE", "capped VAE")
            return result
        finally:
            torch.cuda.set_per_process_memory_fraction(1.0, self.device)
