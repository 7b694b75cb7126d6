"""Config detection from state dicts of several sizes (built on the meta device: no memory)."""
from __future__ import annotations

import pytest
import torch

from comfyui_multitalk.models.dit.config import DiTConfig, infer_dit_config
from comfyui_multitalk.models.dit.model import MultiTalkDiT
from comfyui_multitalk.models.dit.tiny import tiny_dit_config
from comfyui_multitalk.models.errors import CheckpointError


def _meta_state(config: DiTConfig) -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        return MultiTalkDiT(config).state_dict()


def test_released_14b_sizes_are_read_off_the_weights():
    cfg = infer_dit_config(_meta_state(DiTConfig()))
    assert (cfg.dim, cfg.ffn_dim, cfg.num_heads, cfg.num_layers) == (5120, 13824, 40, 40)
    assert (cfg.in_dim, cfg.out_dim, cfg.text_dim, cfg.freq_dim, cfg.patch_size) == (36, 16, 4096, 256, (1, 2, 2))
    assert (cfg.audio_window, cfg.audio_window_vf, cfg.audio_feature_dim) == (5, 8, 12 * 768)
    assert (cfg.audio_intermediate_dim, cfg.audio_token_dim, cfg.audio_tokens) == (512, 768, 32)
    assert cfg.norm_input_visual and cfg.norm_output_audio and cfg.cross_attn_norm and cfg.has_audio
    assert cfg == DiTConfig()


@pytest.mark.parametrize("dim,layers,ffn", [(1536, 30, 8960), (2048, 8, 6144), (640, 3, 1280)])
def test_other_widths_use_128_wide_heads(dim, layers, ffn):
    cfg = infer_dit_config(_meta_state(DiTConfig(dim=dim, num_heads=dim // 128, num_layers=layers, ffn_dim=ffn)))
    assert (cfg.dim, cfg.num_heads, cfg.num_layers, cfg.ffn_dim) == (dim, dim // 128, layers, ffn)


def test_tiny_model_needs_its_head_count():
    state = _meta_state(tiny_dit_config())
    with pytest.raises(CheckpointError, match="head count of a width-32 model"):
        infer_dit_config(state)
    cfg = infer_dit_config(state, num_heads=2, text_len=16)
    assert cfg == tiny_dit_config()


def test_base_without_audio_layers_is_flagged():
    state = {k: v for k, v in _meta_state(tiny_dit_config()).items() if "audio" not in k and "norm_x" not in k}
    assert not infer_dit_config(state, num_heads=2).has_audio


def test_gap_in_blocks_is_reported():
    state = {k: v for k, v in _meta_state(tiny_dit_config(num_layers=3)).items() if not k.startswith("blocks.1.")}
    with pytest.raises(CheckpointError, match=r"blocks \[1\] are missing"):
        infer_dit_config(state, num_heads=2)
