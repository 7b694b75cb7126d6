"""Training settings, every one checked before the first step (a bad value never costs a run)."""
from __future__ import annotations

import importlib.util
from dataclasses import asdict, dataclass

from ..errors import GenerationInputError
from .checkpoints import SAVE_DTYPES

AUTOCAST_CHOICES = ("auto", "bf16", "off")
# auto: 8-bit AdamW for one GPU when bitsandbytes is installed (what lets the 14B step fit 80 GB),
# else fp32 AdamW (fused on GPUs; its states are sharded across GPUs under torchrun).
OPTIMIZERS = ("auto", "adamw", "adamw8bit")
CONTINUATION_MODES = ("multitalk", "infinitetalk")


@dataclass
class TrainSettings:
    steps: int = 2000  # optimizer steps (each: grad_accumulation micro-batches)
    learning_rate: float = 2e-5
    warmup_steps: int = 100
    batch_size: int = 1  # windows per micro-batch in each process
    grad_accumulation: int = 1
    weight_decay: float = 0.01
    zero_audio_share: float = 0.1  # share of micro-batches trained as plain image-to-video (zero audio)
    compose_share: float = 0.0  # share of one-speaker batches joined side by side into two speakers
    continuation_share: float = 0.5  # share of samples trained as continuation windows (when the cache has them)
    continuation_mode: str = "multitalk"  # the long-video mode: "multitalk" or "infinitetalk"
    shift: float = 5.0  # timestep shift (the sampler uses 7 at 480p)
    seed: int = 0
    gradient_checkpointing: bool = True
    offload_activations: bool = False  # keep the checkpointed block inputs in CPU memory
    optimizer: str = "auto"
    max_grad_norm: float = 1.0  # clip the adapter's gradient norm to this; 0: no clipping (still logged)
    ema_decay: float = 0.0  # 0: no EMA; else keep (and save) an exponential moving average of the adapter
    autocast: str = "auto"  # auto: bf16 when the model computes in 16 bits; bf16; off
    save_every: int = 500  # 0: only at the end
    save_dtype: str = "bf16"
    validation_windows: int = 0  # windows held out (whole clips) for the validation loss; 0: none
    validation_every: int = 100  # steps between validation losses
    tensorboard: bool = False  # also log to TensorBoard (needs the tensorboard package)
    preview_every: int = 0  # steps between preview clips (needs a VAE); 0: none
    preview_steps: int = 20  # sampling steps of a preview clip
    fresh_audio_layers: bool = False  # start from new audio layers instead of the model's own

    def validate(self) -> None:
        """GenerationInputError naming every bad value and what to use instead."""
        checks = [
            (self.steps >= 1, "steps must be >= 1"), (self.learning_rate > 0, "learning_rate must be > 0"),
            (self.batch_size >= 1 and self.grad_accumulation >= 1, "batch_size and grad_accumulation must be >= 1"),
            (self.weight_decay >= 0, "weight_decay must be >= 0"),
            (all(0 <= s <= 1 for s in (self.zero_audio_share, self.compose_share, self.continuation_share)),
             "zero_audio_share, compose_share and continuation_share must be in 0..1"),
            (self.continuation_mode in CONTINUATION_MODES,
             f"continuation_mode must be one of {', '.join(CONTINUATION_MODES)}"),
            (self.shift > 0, "shift must be > 0"), (self.autocast in AUTOCAST_CHOICES,
                                                     f"autocast must be one of {', '.join(AUTOCAST_CHOICES)}"),
            (self.warmup_steps >= 0 and self.save_every >= 0, "warmup_steps and save_every must be >= 0"),
            (self.save_dtype in SAVE_DTYPES, f"save_dtype must be one of {', '.join(SAVE_DTYPES)}"),
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {', '.join(OPTIMIZERS)}"),
            (self.max_grad_norm >= 0, "max_grad_norm must be >= 0 (0: no clipping)"),
            (0 <= self.ema_decay < 1, "ema_decay must be in [0, 1) (0: no EMA; 0.999 is usual)"),
            (self.preview_every >= 0 and self.preview_steps >= 1, "preview_every must be >= 0 and preview_steps >= 1"),
            (self.validation_windows >= 0 and self.validation_every >= 1,
             "validation_windows must be >= 0 and validation_every >= 1"),
            (not self.offload_activations or self.gradient_checkpointing,
             "offload_activations needs gradient_checkpointing (it offloads the checkpointed block inputs)"),
        ]
        bad = [message for ok, message in checks if not ok]
        if bad:
            raise GenerationInputError(f"Training settings: {'; '.join(bad)} (got {asdict(self)}).")
        self._check_packages()

    def _check_packages(self) -> None:
        if self.optimizer == "adamw8bit" and importlib.util.find_spec("bitsandbytes") is None:
            raise GenerationInputError("optimizer 'adamw8bit' needs the bitsandbytes package: "
                                       "pip install bitsandbytes (or choose optimizer 'adamw').")
        if self.tensorboard and importlib.util.find_spec("tensorboard") is None:
            raise GenerationInputError("TensorBoard logging needs the tensorboard package: pip install tensorboard "
                                       "(or turn tensorboard off; the CSV log is always written).")
