"""Memory estimates of a DiT forward, for choosing block swap counts and guidance batching.

Per batch item and per token, the largest moment of a block holds: the residual stream (compute
dtype) and its fp32 modulated copy, q, k, v and the attention output, the fp32 products of the
gated residual adds, and the FFN's hidden activations before and after the GELU. Counted as
dim x 32 bytes + ffn_dim x 2 x itemsize bytes per token (bf16: ~6.7 GiB for one 14B 480p 81-frame
item, on the safe side); the GPU benchmark prints the measured peaks to calibrate it.
"""
from __future__ import annotations

import torch

RESERVE_BYTES = 1 << 30  # kept free for the allocator's fragmentation and small temporaries


def activation_bytes(config, tokens: int, batch: int, dtype: torch.dtype = torch.bfloat16) -> int:
    itemsize = torch.empty((), dtype=dtype).element_size()
    per_token = config.dim * 32 * max(1, itemsize // 2) + config.ffn_dim * 2 * itemsize
    return int(batch * tokens * per_token)


def free_device_memory(device: torch.device) -> int:
    """Bytes a new allocation can take on `device`: the driver's free memory plus what PyTorch's
    caching allocator holds unused, within the process's memory fraction when one is set
    (torch.cuda.set_per_process_memory_fraction); 0 for devices without such a query."""
    device = torch.device(device)
    if device.type != "cuda":
        return 0
    free, total = torch.cuda.mem_get_info(device)
    allocated = torch.cuda.memory_allocated(device)
    room = free + torch.cuda.memory_reserved(device) - allocated
    fraction = getattr(torch.cuda, "get_per_process_memory_fraction", None)
    if fraction is not None:
        room = min(room, int(total * fraction(device)) - allocated)
    return int(max(0, room))
