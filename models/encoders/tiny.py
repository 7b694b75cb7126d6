"""Tiny seeded encoders for benchmarks and demos (real files share every loading path).

Layouts written: text encoder and CLIP vision in ComfyUI's (Hugging Face) names; the VAE in
diffusers' names or, through `to_original_vae_layout`, the Wan2.1_VAE.pth names (checked
against the golden release-layout file in tests/test_encoders_vae.py). Loader correctness is
proven on the golden files of the official code, not on these.
"""
from __future__ import annotations

import io

import torch

TINY_CORPUS = (
    "Two people talk in a bright kitchen, one laughs and the other nods.",
    "A woman in a red coat speaks to the camera while a man listens.",
    "Close-up of a singer on a stage, warm light, cinematic, detailed faces.",
    "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量",
    "JPEG压缩残留，丑陋的，残缺的，多余的手指，畸形的，毁容的，杂乱的背景，三条腿，背景人很多，倒着走",
)


def tiny_sentencepiece(vocab_size: int = 96) -> bytes:
    """A unigram sentencepiece model with umt5's special ids (pad 0, eos 1, unk 2)."""
    import sentencepiece as spm

    out = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(TINY_CORPUS * 4), model_writer=out, vocab_size=vocab_size,
        model_type="unigram", character_coverage=1.0, pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
        hard_vocab_limit=False, minloglevel=2,
    )
    return out.getvalue()


def tiny_text_encoder_state(vocab: int = 128, d_model: int = 32, layers: int = 2, heads: int = 4,
                            d_ff: int = 48, seed: int = 0) -> dict[str, torch.Tensor]:
    """Seeded UMT5 encoder weights in the Hugging Face layout (without the tied embed_tokens)."""
    from transformers import UMT5Config, UMT5EncoderModel

    torch.manual_seed(seed)
    config = UMT5Config(vocab_size=vocab, d_model=d_model, d_kv=d_model // heads, d_ff=d_ff,
                        num_layers=layers, num_heads=heads, feed_forward_proj="gated-gelu",
                        is_encoder_decoder=False)
    state = UMT5EncoderModel(config).state_dict()
    state.pop("encoder.embed_tokens.weight")
    return {k: v.clone() for k, v in state.items()}


def tiny_clip_state(hidden: int = 32, layers: int = 3, heads: int = 4, patch: int = 14, image: int = 28,
                    intermediate: int = 64, projection: int = 16, seed: int = 0) -> dict[str, torch.Tensor]:
    """Seeded CLIP vision weights in ComfyUI's layout (vision_model.* + visual_projection)."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    config = CLIPVisionConfig(hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
                              num_attention_heads=heads, image_size=image, patch_size=patch,
                              projection_dim=projection, hidden_act="gelu")
    state = CLIPVisionModelWithProjection(config).state_dict()
    state = {k if k.startswith(("vision_model.", "visual_projection")) else "vision_model." + k: v.clone()
             for k, v in state.items() if not k.endswith("position_ids")}
    for key in state:  # random LayerNorm affine parameters so a mapping slip shows up
        if "norm" in key:
            state[key] = state[key] + 0.1 * torch.randn_like(state[key])
    return state


def tiny_vae_state(base_dim: int = 8, seed: int = 0) -> dict[str, torch.Tensor]:
    """Seeded Wan2.1 VAE weights (released block structure, small base width), diffusers layout."""
    from diffusers import AutoencoderKLWan

    torch.manual_seed(seed)
    state = AutoencoderKLWan(base_dim=base_dim).state_dict()
    for key in state:  # RMS-norm gains start at 1: perturb them so a mapping slip shows up
        if key.endswith("gamma"):
            state[key] = state[key] + 0.1 * torch.randn_like(state[key])
    return {k: v.clone() for k, v in state.items()}


_RESNET_PARTS = {"norm1.gamma": "residual.0.gamma", "conv1": "residual.2", "norm2.gamma": "residual.3.gamma",
                 "conv2": "residual.6", "conv_shortcut": "shortcut"}


def _resnet_part(rest: str) -> str:
    for ours, theirs in _RESNET_PARTS.items():
        if rest.startswith(ours):
            return theirs + rest[len(ours):]
    return rest


def _original_vae_key(key: str) -> str:
    head = {"quant_conv": "conv1", "post_quant_conv": "conv2"}
    first, rest = key.split(".", 1)
    if first in head:
        return f"{head[first]}.{rest}"
    side, block, rest = key.split(".", 2)  # encoder|decoder, module, remainder
    simple = {"conv_in": "conv1", "norm_out": "head.0", "conv_out": "head.2"}
    if block in simple:
        return f"{side}.{simple[block]}.{rest}"
    if block == "mid_block":
        kind, idx, part = rest.split(".", 2)
        slot = {("resnets", "0"): "0", ("attentions", "0"): "1", ("resnets", "1"): "2"}[(kind, idx)]
        return f"{side}.middle.{slot}.{_resnet_part(part) if kind == 'resnets' else part}"
    if block == "down_blocks":
        idx, part = rest.split(".", 1)
        return f"encoder.downsamples.{idx}.{_resnet_part(part)}"
    idx, kind, sub, part = rest.split(".", 3)  # decoder.up_blocks.{b}.resnets|upsamplers.{r}.…
    slot = 4 * int(idx) + (int(sub) if kind == "resnets" else 3)
    return f"decoder.upsamples.{slot}.{_resnet_part(part) if kind == 'resnets' else part}"


def to_original_vae_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """diffusers AutoencoderKLWan keys -> the original Wan2.1_VAE.pth names."""
    return {_original_vae_key(k): v for k, v in state.items()}
