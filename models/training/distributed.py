"""Several GPUs (or CPU processes) with PyTorch's own engine: one process per device under
`torchrun`, the adapter sharded with FSDP (fully_shard), the frozen backbone replicated.

Sharding the adapter splits its fp32 weights, gradients and AdamW moments across the processes
(FSDP gathers a layer's weights just before it runs and reduce-scatters its gradients, averaged
over the processes). Every process draws the same batches, noise and timesteps from one seeded
generator and trains its own slice of each batch, so N processes with batch_size b compute
exactly what one process computes with batch_size N*b.
"""
from __future__ import annotations

import gc
import os
from dataclasses import dataclass
from typing import Iterable, Mapping, Optional

import torch
from torch import nn

from ..errors import GenerationInputError


@dataclass(frozen=True)
class ProcessGroupInfo:
    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def part(self, batch_size: int) -> slice:
        """This process's samples of a global batch of world * batch_size."""
        return slice(self.rank * batch_size, (self.rank + 1) * batch_size)


def init_from_environment() -> tuple[ProcessGroupInfo, torch.device]:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK): NCCL on GPUs,
    gloo on CPUs. Without torchrun: one process, the default device."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local) if cuda else torch.device("cpu")
    if world <= 1:
        return ProcessGroupInfo(), device
    if cuda:
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return ProcessGroupInfo(dist.get_rank(), dist.get_world_size()), device


def leave_process_group(wait: bool = True) -> None:
    """Tear the process group down, after every process got here when `wait` (a failed process
    leaves at once: its peers may be inside a collective it never joins). Left to interpreter exit,
    gloo's worker threads can still be running and abort a process whose work is done."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        if wait:
            dist.barrier()
        gc.collect()  # sharded modules and device meshes that still hold the group
        dist.destroy_process_group()


def current_group() -> ProcessGroupInfo:
    """The process group this process already belongs to (one process when none)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return ProcessGroupInfo(dist.get_rank(), dist.get_world_size())
    return ProcessGroupInfo()


def shard_modules(modules: Iterable[nn.Module], group: ProcessGroupInfo) -> None:
    """FSDP-shard each trainable module over the processes (no-op for one process)."""
    if not group.distributed:
        return
    from torch.distributed.fsdp import fully_shard

    for module in modules:
        fully_shard(module)


def full_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """The whole tensor of a (possibly sharded) parameter or state; collective when sharded."""
    return tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor


def copy_full_into(param: torch.Tensor, value: torch.Tensor) -> None:
    """Load a whole tensor into a (possibly sharded) parameter."""
    if hasattr(param, "device_mesh"):
        from torch.distributed.tensor import distribute_tensor

        value = distribute_tensor(value.to(param.device, param.dtype), param.device_mesh, param.placements)
    param.copy_(value)


def mean_over_processes(value: float, group: ProcessGroupInfo) -> float:
    if not group.distributed:
        return value
    import torch.distributed as dist

    total = torch.tensor([value], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        total = total.cuda()
    dist.all_reduce(total)
    return float(total.item()) / group.world


def optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """The optimizer's whole state keyed by parameter names (the same file for any process count)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    return get_optimizer_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True,
                                                                                cpu_offload=True))


def load_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer, state: Mapping,
                         group: ProcessGroupInfo) -> None:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    try:
        set_optimizer_state_dict(model, optimizer, dict(state),
                                 options=StateDictOptions(full_state_dict=group.distributed))
    except (KeyError, ValueError, RuntimeError) as exc:
        raise GenerationInputError(f"The resume state's optimizer does not fit this run ({exc}): it was saved with "
                                   "another optimizer; start a new run (resume off or another output name).") from None


def barrier(group: Optional[ProcessGroupInfo] = None) -> None:
    group = group or current_group()
    if group.distributed:
        import torch.distributed as dist

        dist.barrier()
