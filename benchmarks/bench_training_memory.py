"""Memory plan of one adapter-training step of the 14B model, counted without a GPU.

    python benchmarks/bench_training_memory.py                      # 81 frames, 480p, 2 speakers
    python benchmarks/bench_training_memory.py --frames 81 --height 480 --width 832 --speakers 2

Runs the trainer's own step (TrainableAdapter, checkpointed_blocks, flow_matching_loss, backward,
gradient clipping, the optimizer step) on fake tensors with the released 14B config and prints,
per memory plan side by side: parameters, gradients, optimizer states, the activations autograd
keeps, the peaks of the forward pass, the backward pass and the optimizer step, and the largest
single temporary. See benchmarks/training_memory.py for how it is counted. Figures are bytes the
tensors need; the CUDA allocator adds fragmentation and its workspace on top (a few GB).
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from training_memory import (HOST, LiveBytes, SavedBytes, bitsandbytes_states, flash_attention,  # noqa: E402
                             host_offload_hooks)

GB = 1e9


@dataclass(frozen=True)
class Plan:
    name: str
    backbone: str  # "bf16" | "fp8"
    park: bool  # the model's own audio layers off the device while copies train
    optimizer: str  # "adamw" (fused, fp32 states) | "adamw8bit"
    offload: bool  # checkpointed block inputs in host memory


PLANS = (
    Plan("as before", "bf16", False, "adamw", False),
    Plan("bf16+park", "bf16", True, "adamw", False),
    Plan("bf16+park+offload", "bf16", True, "adamw", True),
    Plan("bf16+park+8bit", "bf16", True, "adamw8bit", False),
    Plan("bf16+park+8bit+offload", "bf16", True, "adamw8bit", True),
    Plan("fp8+park", "fp8", True, "adamw", False),
)


def _model(plan: Plan):
    from comfyui_multitalk.models.dit.config import DiTConfig
    from comfyui_multitalk.models.weights.linears import swap_in_quantized_linears
    from comfyui_multitalk.models.dit.model import MultiTalkDiT
    from comfyui_multitalk.models.dit.keys import is_audio_key

    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)  # as a bf16 checkpoint loads (module.to() cannot swap fakes)
    try:
        model = MultiTalkDiT(DiTConfig())
    finally:
        torch.set_default_dtype(default)
    model.attention = flash_attention
    if plan.backbone == "fp8":
        frozen = {k for k, v in model.state_dict().items()
                  if k.endswith(".weight") and v.dim() == 2 and not is_audio_key(k)
                  and not k.startswith(("patch_embedding", "head.", "time_", "text_embedding", "img_emb"))}
        swap_in_quantized_linears(model, dict.fromkeys(frozen, "fp8"), torch.bfloat16)
    return model


def _batch(frames: int, height: int, width: int, speakers: int):
    from comfyui_multitalk.models.training import FlowDraw
    from comfyui_multitalk.models.training.batches import TrainBatch

    t, h, w = (frames - 1) // 4 + 1, height // 8, width // 8
    latents = torch.randn(1, 16, t, h, w)
    return TrainBatch(latents=latents, y=torch.randn(1, 20, t, h, w),
                      audio=torch.randn(1, speakers, frames, 5, 12, 768), context=[torch.randn(512, 4096)],
                      clip=torch.randn(1, 257, 1280), masks=torch.ones(1, speakers + 1, h, w), active=[speakers],
                      known_slots=[0], clean_slots=[0]), FlowDraw(torch.full((1,), 0.5), torch.randn(latents.shape))


def _optimizer(plan: Plan, params: list):
    """The optimizer with its states already made, as from the second step on."""
    if plan.optimizer == "adamw8bit":  # the states bitsandbytes keeps; its update runs in place
        return bitsandbytes_states(params)
    optimizer = torch.optim.AdamW(params, lr=2e-5, fused=True)
    for param in params:
        param.grad = torch.zeros_like(param)
    optimizer.step()  # makes the moments
    optimizer.zero_grad(set_to_none=True)
    return optimizer


def measure(plan: Plan, frames: int, height: int, width: int, speakers: int) -> dict:
    from torch._subclasses.fake_tensor import FakeTensorMode

    from comfyui_multitalk.models.training import adapter_params, flow_matching_loss
    from comfyui_multitalk.models.training.adapter_params import TrainableAdapter, checkpointed_blocks

    adapter_params.offload_hooks = host_offload_hooks  # emulated host memory instead of pinned CPU memory
    with FakeTensorMode(allow_non_fake_inputs=True):
        model = _model(plan)
        live = LiveBytes()
        live.track(list(model.parameters()) + list(model.buffers()))
        frozen = sum(p.untyped_storage().nbytes() for p in model.parameters())
        batch, draw = _batch(frames, height, width, speakers)
        tokens = batch.latents.shape[2] * batch.latents.shape[3] * batch.latents.shape[4] // 4
        with live:
            with TrainableAdapter(model, park_device=HOST if plan.park else None) as adapter, \
                    checkpointed_blocks(model, True, plan.offload):
                params = [p for _, p in adapter.named_parameters()]
                trainable = sum(p.numel() for p in params)
                states = _optimizer(plan, params)
                weights = live.current
                saved = SavedBytes(exclude={p.untyped_storage()._cdata for p in model.parameters()})
                with live.during("forward"), saved.hooks((1, tokens, model.config.dim)):
                    loss = flow_matching_loss(model, batch, draw, autocast=True)
                after_forward = live.current
                with live.during("backward"):
                    loss.backward()
                    del loss
                with live.during("optimizer"):
                    torch.nn.utils.clip_grad_norm_(params, 1.0)  # what clip_gradients runs
                    if not isinstance(states, list):
                        states.step()
                state_bytes = _state_bytes(states)
    total_params = sum(p.numel() for p in model.parameters())
    return {"plan": plan.name, "total_params_B": total_params / 1e9, "trainable_B": trainable / 1e9,
            "frozen_GB": frozen / GB, "weights_GB": weights / GB, "trainable_fp32_GB": 4 * trainable / GB,
            "grads_GB": 4 * trainable / GB, "optimizer_GB": state_bytes / GB, "saved_GB": saved.device / GB,
            "block_inputs_GB": saved.block_inputs / GB, "after_forward_GB": after_forward / GB,
            "peak_forward_GB": live.peaks["forward"] / GB, "peak_backward_GB": live.peaks["backward"] / GB,
            "peak_optimizer_GB": live.peaks["optimizer"] / GB, "largest_GB": live.largest.nbytes / GB,
            "largest_op": f"{live.largest.op}{list(live.largest.shape)}", "tokens": tokens}


def _state_bytes(states) -> int:
    if isinstance(states, list):
        return sum(t.untyped_storage().nbytes() for t in states)
    return sum(t.untyped_storage().nbytes() for s in states.state.values() for t in s.values()
               if isinstance(t, torch.Tensor) and t.dim() > 0)


ROWS = [("total parameters (B)", "total_params_B", "{:.2f}"), ("trainable parameters (B)", "trainable_B", "{:.2f}"),
        ("model as loaded: backbone + audio layers (GB)", "frozen_GB", "{:.1f}"),
        ("on device before the step: weights + states (GB)", "weights_GB", "{:.1f}"),
        ("trainable fp32 master weights (GB)", "trainable_fp32_GB", "{:.1f}"), ("gradients fp32 (GB)", "grads_GB",
                                                                                "{:.1f}"),
        ("optimizer states (GB)", "optimizer_GB", "{:.1f}"), ("activations kept for backward (GB)", "saved_GB",
                                                               "{:.1f}"),
        ("  of which checkpointed block inputs (GB)", "block_inputs_GB", "{:.1f}"),
        ("on device after forward (GB)", "after_forward_GB", "{:.1f}"), ("peak: forward (GB)", "peak_forward_GB",
                                                                         "{:.1f}"),
        ("peak: backward (GB)", "peak_backward_GB", "{:.1f}"), ("peak: optimizer step (GB)", "peak_optimizer_GB",
                                                                "{:.1f}"),
        ("largest single temporary (GB)", "largest_GB", "{:.2f}"), ("  its op and shape", "largest_op", "{}")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=81)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=832)
    parser.add_argument("--speakers", type=int, default=2)
    parser.add_argument("--plans", nargs="*", default=[p.name for p in PLANS], choices=[p.name for p in PLANS])
    args = parser.parse_args()
    results = [measure(p, args.frames, args.height, args.width, args.speakers) for p in PLANS if p.name in args.plans]
    print(f"One training step, 14B, {args.frames} frames {args.height}x{args.width} "
          f"({results[0]['tokens']} tokens), {args.speakers} speakers, batch 1, checkpointed blocks, bf16 autocast")
    width = max(len(r["plan"]) for r in results) + 2
    print(f"{'':50}" + "".join(f"{r['plan']:>{width}}" for r in results))
    for label, key, fmt in ROWS:
        print(f"{label:50}" + "".join(f"{fmt.format(r[key]):>{width}}" for r in results))


if __name__ == "__main__":
    main()
