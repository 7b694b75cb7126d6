"""The official MultiTalk DiT (MeiGen-AI/MultiTalk, wan/modules/multitalk_model.py) from a snapshot
kept outside the project, for the GPU benchmark's side-by-side. Nothing of it is copied here.

Its optional GPU libraries are replaced by stand-ins on PyTorch's scaled_dot_product_attention
(which on a GPU dispatches to the same flash / memory-efficient kernels), and diffusers'
ModelMixin / ConfigMixin, when diffusers is absent, by plain nn.Module bases, so the module
imports on a machine with torch, einops and numpy only.

    git -C <MultiTalk mirror> archive HEAD wan | tar -x -C /tmp/official   # the snapshot
"""
from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import types

import torch
import torch.nn.functional as F
from torch import nn


def _stub(name: str, **attrs) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__spec__ = importlib.machinery.ModuleSpec(name, None)
    module.__dict__.update(attrs)
    sys.modules[name] = module
    return module


def _sdpa_blhd(q, k, v, attn_bias=None, op=None, **_):
    # xformers' layout [B, L, H, D]
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))
    return F.scaled_dot_product_attention(q, k, v).transpose(1, 2)


def _flash_attention(q, k, v, q_lens=None, k_lens=None, dropout_p=0.0, softmax_scale=None, q_scale=None,
                     causal=False, window_size=(-1, -1), deterministic=False, dtype=torch.bfloat16, version=None):
    return _sdpa_blhd(q, k, v)  # in the inputs' dtype (bf16 on the GPU; fp32 for CPU parity checks)


def _install_stand_ins() -> list[str]:
    """Stand-ins for the official module's imports; returns their names (removed after its import,
    so other code, e.g. diffusers' own xformers check, never sees them)."""
    saved = {name: sys.modules.get(name) for name in _STAND_INS}
    xformers = _stub("xformers")
    xformers.ops = _stub("xformers.ops", memory_efficient_attention=_sdpa_blhd)
    xformers.ops.fmha = _stub("xformers.ops.fmha")
    for name in ("xfuser", "xfuser.core"):
        _stub(name)
    _stub("xfuser.core.distributed", get_sequence_parallel_rank=lambda: 0,
          get_sequence_parallel_world_size=lambda: 1, get_sp_group=lambda: None)
    if importlib.util.find_spec("diffusers") is None:
        class ConfigMixin:  # the config bookkeeping is not needed to run forward
            pass

        diffusers = _stub("diffusers", ModelMixin=nn.Module, ConfigMixin=ConfigMixin)
        diffusers.configuration_utils = _stub("diffusers.configuration_utils", ConfigMixin=ConfigMixin,
                                              register_to_config=lambda f: f)
    return saved


_STAND_INS = ("xformers", "xformers.ops", "xformers.ops.fmha", "xfuser", "xfuser.core", "xfuser.core.distributed",
              "diffusers", "diffusers.configuration_utils")


def _remove_stand_ins(saved: dict) -> None:
    for name, module in saved.items():
        if module is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = module


# Imported by the official utilities for video and audio files only: stand-ins where absent.
_FILE_LIBRARIES = ("imageio", "soundfile", "torchvision", "skimage", "skimage.color", "tqdm")


def _stub_absent_file_libraries() -> list[str]:
    stubbed = []
    for name in _FILE_LIBRARIES:
        try:
            importlib.import_module(name)
        except Exception:  # absent or broken: the DiT never calls it
            _stub(name, color=None, tqdm=lambda x, **_: x)
            stubbed.append(name)
    return stubbed


def _import_real_libraries_first() -> None:
    """diffusers and transformers record which optional libraries exist when first imported: import
    them before any stand-in exists, so they never mistake one for the real library."""
    for name in ("diffusers", "diffusers.models.autoencoders.autoencoder_kl_wan", "transformers.modeling_utils"):
        try:
            importlib.import_module(name)
        except Exception:  # absent here: the stand-in below or nothing is needed
            pass


def load_official(snapshot: str):
    """The official `wan.modules.multitalk_model` module (WanModel) from a snapshot folder."""
    _import_real_libraries_first()
    saved = _install_stand_ins()
    stubbed = _stub_absent_file_libraries()
    for name, folder in (("wan", "wan"), ("wan.modules", "wan/modules"), ("wan.utils", "wan/utils")):
        package = types.ModuleType(name)
        package.__path__ = [f"{snapshot}/{folder}"]
        sys.modules[name] = package
    loaded = {}
    for name in ("wan.utils.multitalk_utils", "wan.modules.attention", "wan.modules.multitalk_model"):
        spec = importlib.util.spec_from_file_location(name, f"{snapshot}/{name.replace('.', '/')}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        loaded[name] = module
    for name in stubbed:
        sys.modules.pop(name, None)
    _remove_stand_ins(saved)
    model_module = loaded["wan.modules.multitalk_model"]
    loaded["wan.modules.attention"].flash_attention = _flash_attention
    model_module.flash_attention = _flash_attention
    model_module.USE_SAGEATTN = False
    model_module.torch_gc = lambda: None  # it empties the CUDA cache inside every block otherwise
    loaded["wan.utils.multitalk_utils"].torch_gc = lambda: None
    return model_module


def official_model(snapshot: str, cfg, state: dict[str, torch.Tensor]) -> nn.Module:
    """The official WanModel at `cfg`'s sizes holding the tensors of `state` (shared, not copied)."""
    module = load_official(snapshot)
    kwargs = dict(model_type="i2v", patch_size=cfg.patch_size, text_len=cfg.text_len, in_dim=cfg.in_dim, dim=cfg.dim,
                  ffn_dim=cfg.ffn_dim, freq_dim=cfg.freq_dim, text_dim=cfg.text_dim, out_dim=cfg.out_dim,
                  num_heads=cfg.num_heads, num_layers=cfg.num_layers, eps=cfg.eps, audio_window=cfg.audio_window,
                  intermediate_dim=cfg.audio_intermediate_dim, output_dim=cfg.audio_token_dim,
                  context_tokens=cfg.audio_tokens, vae_scale=cfg.vae_scale, norm_input_visual=True,
                  norm_output_audio=True, weight_init=False)
    with torch.device("meta"):
        model = module.WanModel(**kwargs)
    model.init_freqs()  # its RoPE table (a plain attribute) was made on the meta device
    model.load_state_dict(state, strict=True, assign=True)
    model.disable_teacache() if hasattr(model, "disable_teacache") else None
    return model.eval().requires_grad_(False)


def official_forward(model: nn.Module, x, t, context, clip, y, audio, masks, tokens: int) -> torch.Tensor:
    """One official forward of one batch item: x [1, 16, T, H, W] etc. in our shapes."""
    return model([x[0]], t, [context[0]], tokens, clip_fea=clip, y=[y[0]], audio=audio[0],
                 ref_target_masks=masks)
