"""A model that shares every weight with another but whose modules and parameter slots are its
own, so patching it (new tensors, swapped-in layer classes) never touches the original."""
from __future__ import annotations

import copy

from torch import nn


def share_clone(module: nn.Module) -> nn.Module:
    """A copy of the module tree holding the same Parameter and buffer objects (no tensor copied).

    Replacing a parameter, buffer, submodule or attribute on the copy leaves the original as it
    was; in-place changes of a shared tensor's values would show in both (patching never does that).
    """
    clone = copy.copy(module)
    clone.__dict__ = dict(module.__dict__)
    clone._parameters = dict(module._parameters)
    clone._buffers = dict(module._buffers)
    clone._non_persistent_buffers_set = set(module._non_persistent_buffers_set)
    clone._modules = {name: None if child is None else share_clone(child) for name, child in module._modules.items()}
    for hooks in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_state_dict_hooks",
                  "_load_state_dict_pre_hooks"):
        if hooks in module.__dict__:
            clone.__dict__[hooks] = copy.copy(module.__dict__[hooks])
    if "_compiled_call_impl" in clone.__dict__:
        clone._compiled_call_impl = None  # a compiled wrapper is bound to the original
    return clone
