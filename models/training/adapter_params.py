"""Which weights train, and how the model is prepared for training without being changed.

Trainable: `audio_proj.*`, `blocks.*.norm_x.*`, `blocks.*.audio_cross_attn.*` (the released
audio files' keys). While training they are fp32 copies (master weights; fp8 layers become
plain linears) and the model's own audio layers wait in CPU memory (2.4 B parameters of the
14B model would otherwise sit twice on the GPU); on exit the model gets its own modules back
where they were, so a model shared with other nodes is left as it was. Inference tensors
(ComfyUI loads weights under inference mode) cannot take part in autograd, so the frozen ones
are replaced by equal normal tensors.
"""
from __future__ import annotations

import copy
from contextlib import contextmanager
from typing import Iterator, Mapping, Optional

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..dit.audio_adapter import reset_audio_parameters
from ..dit.keys import is_audio_key
from ..weights import Fp8Linear
from ..errors import CheckpointError
from .distributed import copy_full_into, full_tensor

PARK_DEVICE = torch.device("cpu")  # where the model's own audio layers wait while copies train


def _slots(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """(owner, attribute) of every trainable module."""
    if not hasattr(model, "audio_proj"):
        raise CheckpointError("The model has no audio layers to train: load it with require_audio=False "
                              "(fresh layers) or together with a MultiTalk audio file.")
    slots = [(model, "audio_proj")]
    for block in model.blocks:
        slots += [(block, "audio_cross_attn"), (block, "norm_x")]
    return slots


def _dense(layer: Fp8Linear) -> nn.Linear:
    dense = nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None)
    dense.weight = nn.Parameter(layer.dequantized_weight(torch.float32))
    if layer.bias is not None:
        dense.bias = nn.Parameter(layer.bias.detach().float().clone())
    return dense


def _trainable_copy(module: nn.Module, device: torch.device) -> nn.Module:
    module = copy.deepcopy(module)  # deep copies of inference tensors are normal tensors
    if isinstance(module, Fp8Linear):
        module = _dense(module)
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, Fp8Linear):
                setattr(parent, name, _dense(child))
    _convert(module, device, torch.float32)
    return module.requires_grad_(True)


def _convert(module: nn.Module, device: torch.device, dtype: Optional[torch.dtype] = None) -> None:
    """Move (and cast floating) parameters and buffers in place, tensor by tensor: new Parameter
    objects rather than module.to()'s in-place swap, which tensor subclasses refuse."""
    for sub in module.modules():
        for name, param in list(sub._parameters.items()):
            if param is not None:
                value = param.detach().to(device, dtype if dtype and param.is_floating_point() else None)
                sub._parameters[name] = nn.Parameter(value, requires_grad=param.requires_grad)
        for name, buffer in list(sub._buffers.items()):
            if buffer is not None:
                sub._buffers[name] = buffer.to(device, dtype if dtype and buffer.is_floating_point() else None)


def _move(module: nn.Module, device: torch.device) -> None:
    """Move a module in place (inference tensors are moved under inference mode, as they were made)."""
    inference = any(t.is_inference() for t in list(module.parameters()) + list(module.buffers()))
    with torch.inference_mode(inference):
        _convert(module, device)


def _release_inference_tensors(model: nn.Module) -> None:
    """Swap inference-mode parameters and buffers for equal normal tensors (values unchanged)."""
    for module in model.modules():
        for name, param in list(module._parameters.items()):
            if param is not None and param.is_inference():
                module._parameters[name] = nn.Parameter(param.detach().clone(), requires_grad=False)
        for name, buffer in list(module._buffers.items()):
            if buffer is not None and buffer.is_inference():
                module._buffers[name] = buffer.clone()


class TrainableAdapter:
    """Context manager: fp32 trainable audio layers in, backbone frozen; originals back on exit.

    fresh: start from newly initialised audio layers instead of the model's own."""

    def __init__(self, model: nn.Module, fresh: bool = False, park_device: Optional[torch.device] = None):
        self.model, self.fresh = model, fresh
        self._originals: list[tuple[nn.Module, str, nn.Module]] = []
        self.device = model.patch_embedding.weight.device
        # Where the model's own audio layers wait: CPU memory when the model is on an accelerator.
        self.park_device = park_device if park_device is not None else \
            (None if self.device.type in ("cpu", "meta") else PARK_DEVICE)

    def __enter__(self) -> "TrainableAdapter":
        device = self.device
        with torch.inference_mode(False):
            for owner, name in _slots(self.model):
                original = getattr(owner, name)
                self._originals.append((owner, name, original))
                setattr(owner, name, _trainable_copy(original, device))
                if self.park_device is not None:
                    _move(original, self.park_device)
            _release_inference_tensors(self.model)
            if self.fresh:
                with torch.no_grad():
                    reset_audio_parameters([getattr(owner, name) for owner, name, _ in self._originals])
        self.model.requires_grad_(False)
        for owner, name, _ in self._originals:
            getattr(owner, name).requires_grad_(True)
        return self

    def __exit__(self, *exc) -> None:
        for owner, name, original in reversed(self._originals):
            if self.park_device is not None:
                _move(original, self.device)
            setattr(owner, name, original)
        self._originals.clear()

    def modules(self) -> list[nn.Module]:
        """The trainable modules (what FSDP shards), in a fixed order."""
        return [getattr(owner, name) for owner, name, _ in self._originals]

    def named_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """Trainable parameters in the released key names, in a fixed order."""
        return [(k, p) for k, p in self.model.named_parameters() if p.requires_grad and is_audio_key(k)]

    def state_dict(self) -> dict[str, torch.Tensor]:
        """fp32 CPU copies of every trainable tensor (exactly the released audio keys)."""
        return {k: full_tensor(v.detach()).float().cpu().clone() for k, v in self.model.state_dict().items()
                if is_audio_key(k)}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        own = dict(self.named_parameters())
        if set(own) != set(state) or any(own[k].shape != state[k].shape for k in own):
            raise CheckpointError("The resume state does not fit this model's audio layers (other sizes or keys): "
                                  "start a new run (turn resume off or choose another output name).")
        with torch.no_grad():
            for key, param in own.items():
                copy_full_into(param, state[key])


def offload_hooks():
    """Saved-tensor hooks that keep what autograd saves in (pinned) CPU memory."""
    from torch.autograd.graph import save_on_cpu

    return save_on_cpu(pin_memory=torch.cuda.is_available())


@contextmanager
def checkpointed_blocks(model: nn.Module, enabled: bool, offload: bool = False) -> Iterator[None]:
    """Recompute each block's activations in the backward pass instead of keeping them.

    offload: keep the block inputs that the recomputation starts from in (pinned) CPU memory
    (torch.autograd.graph.save_on_cpu around the checkpoint, which saves exactly those inputs
    through the outer hooks; what the block saves inside is recomputed, never stored)."""
    if not enabled:
        yield
        return

    def wrap(forward):
        if not offload:
            return lambda x, e, ctx: checkpoint(forward, x, e, ctx, use_reentrant=False)

        def offloaded(x, e, ctx):
            with offload_hooks():
                return checkpoint(forward, x, e, ctx, use_reentrant=False)
        return offloaded

    for block in model.blocks:
        block.forward = wrap(block.forward)
    try:
        yield
    finally:
        for block in model.blocks:
            del block.forward  # back to the class's forward
