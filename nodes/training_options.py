"""The training node's optional inputs (each maps onto a TrainSettings field of the same name)."""
from __future__ import annotations

TRAIN_OPTIONS = {
    "continuation_share": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.05, "tooltip": (
        "Share of windows trained as continuations, as long-video sampling runs every window after the first "
        "(the cache must be prepared by this version).")}),
    "continuation_mode": (["multitalk", "infinitetalk"], {"default": "multitalk", "tooltip": (
        "The long-video mode you will sample with. multitalk: the first 25 frames known in the condition; "
        "infinitetalk: the reference frame in the condition and 9 clean motion frames in the first latents.")}),
    "optimizer": (["auto", "adamw", "adamw8bit"], {"default": "auto", "tooltip": (
        "adamw: fp32 AdamW (fused on GPUs). adamw8bit: bitsandbytes' 8-bit AdamW, a quarter of the optimizer "
        "memory (pip install bitsandbytes): what lets a 14B step at 81 frames 480p fit an 80 GB GPU with a "
        "bf16 backbone. auto: adamw8bit on one GPU when bitsandbytes is installed, else adamw.")}),
    "max_grad_norm": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1000.0, "step": 0.1, "tooltip": (
        "Clip the adapter's gradient norm to this; 0: no clipping. The norm is logged either way.")}),
    "ema_decay": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 0.99999, "step": 0.0001, "round": False, "tooltip": (
        "Keep an exponential moving average of the adapter (saved as <name>_ema); 0: off, 0.999 is usual.")}),
    "offload_activations": ("BOOLEAN", {"default": False, "tooltip": (
        "Keep the checkpointed block inputs in CPU memory (about 13 GB at 81 frames 480p on the 14B model); "
        "needs gradient_checkpointing.")}),
    "validation_windows": ("INT", {"default": 0, "min": 0, "max": 10000, "tooltip": (
        "Hold out at least this many windows (whole clips) for a validation loss; 0: none.")}),
    "validation_every": ("INT", {"default": 100, "min": 1, "max": 1000000, "tooltip": (
        "Steps between validation losses (and at the last step).")}),
    "preview_every": ("INT", {"default": 0, "min": 0, "max": 1000000, "tooltip": (
        "Every N steps sample one window (the first held-out one) with the adapter as it is and write "
        "<name>_preview_stepN.mp4 with its sound; needs the vae input. 0: no previews.")}),
    "preview_steps": ("INT", {"default": 20, "min": 1, "max": 200, "tooltip": (
        "Sampling steps of a preview clip (conditional pass only, no guidance).")}),
    "tensorboard": ("BOOLEAN", {"default": False, "tooltip": (
        "Also log loss, gradient norm, learning rate and validation loss for TensorBoard (<name>_tensorboard; "
        "pip install tensorboard). The CSV log <name>.log.csv is always written.")}),
}

_CASTS = {"FLOAT": float, "INT": int, "BOOLEAN": bool}


def train_options(values: dict) -> dict:
    """Node option values -> TrainSettings keyword arguments (unknown names are ignored)."""
    out = {}
    for name, (kind, _) in TRAIN_OPTIONS.items():
        if name in values:
            cast = _CASTS.get(kind) if isinstance(kind, str) else str
            out[name] = cast(values[name]) if cast else values[name]
    return out
