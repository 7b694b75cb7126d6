"""Writing the trained adapter (released key layout) and the resume state.

The adapter file holds exactly the audio keys of multitalk.safetensors, so this pack's
loader, the official code and native ComfyUI load it as an audio file. The resume state
holds what an exact continuation needs: fp32 weights, optimizer moments, step, generator
state and the losses so far. Files are written to a temporary name and renamed, so an
interrupted save never leaves a half-written file under the real name.
"""
from __future__ import annotations

import os
from typing import Any, Iterable, Mapping, Optional

import torch

from ..errors import CheckpointError
from ..output_files import atomic_write, check_output

SAVE_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
RESUME_SUFFIX = ".resume.pt"


def adapter_paths(output: str) -> tuple[str, str]:
    """(adapter .safetensors, resume state) for an output path with or without the extension."""
    stem = output[: -len(".safetensors")] if output.endswith(".safetensors") else output
    return stem + ".safetensors", stem + RESUME_SUFFIX


def step_path(adapter: str, step: int) -> str:
    return adapter[: -len(".safetensors")] + f"_step{step:06d}.safetensors"


def _step_files(adapter: str) -> list[str]:
    """The <stem>_stepNNNNNN.safetensors files an earlier run left beside `adapter`."""
    folder, stem = os.path.split(adapter[: -len(".safetensors")])
    if not os.path.isdir(folder or "."):
        return []
    return [os.path.join(folder, name) for name in os.listdir(folder or ".")
            if name.startswith(stem + "_step") and name.endswith(".safetensors")]


def check_adapter_outputs(output: str, resuming: bool, also_reads: Iterable[str] = ()) -> None:
    """OutputPathError when the adapter, its resume state or a step file would overwrite a file
    the run reads (noted inputs and `also_reads`). A resumed run owns its adapter and resume
    state: saving over them is what resuming means, so they are not checked then."""
    if resuming:
        return
    adapter, resume_state = adapter_paths(os.path.expanduser(output))
    also_reads = list(also_reads)
    for path in [adapter, resume_state] + _step_files(adapter):
        check_output(path, overwrite=True, kind=None, also_reads=also_reads)


def save_adapter(path: str, state: Mapping[str, torch.Tensor], dtype: str = "bf16",
                 metadata: Optional[Mapping[str, Any]] = None) -> str:
    from safetensors.torch import save_file

    if dtype not in SAVE_DTYPES:
        raise CheckpointError(f"Unknown save dtype '{dtype}': choose one of {', '.join(SAVE_DTYPES)}.")
    tensors = {k: v.detach().to("cpu", SAVE_DTYPES[dtype]).contiguous() for k, v in state.items()}
    with atomic_write(path) as temporary:
        save_file(tensors, temporary, metadata={k: str(v) for k, v in (metadata or {}).items()})
    return path


def save_resume_state(path: str, state: Mapping[str, Any]) -> str:
    with atomic_write(path) as temporary:
        torch.save(dict(state), temporary)
    return path


def load_resume_state(path: str) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"Cannot read the resume state '{path}' ({exc}): delete it to start afresh.") from None


def ema_path(adapter: str) -> str:
    """The EMA adapter beside the adapter: `<name>_ema.safetensors`."""
    return adapter[: -len(".safetensors")] + "_ema.safetensors"


def check_writable(adapter: str) -> None:
    """CheckpointError before any training when the adapter's folder cannot be written."""
    folder = os.path.dirname(os.path.abspath(adapter))
    try:
        os.makedirs(folder, exist_ok=True)
        probe = os.path.join(folder, f".multitalk_write_check_{os.getpid()}")
        with open(probe, "wb"):
            pass
        os.remove(probe)
    except OSError as exc:
        raise CheckpointError(f"Cannot write the adapter into '{folder}' ({exc}): choose another output_name "
                              "or folder.") from None
