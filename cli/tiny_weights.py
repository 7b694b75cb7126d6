"""Tiny seeded weights for every model the workflows load, in the real file formats.

The sizes chain so each encoder's output fits the tiny DiT: text width = the T5's d_model,
CLIP width = the CLIP's hidden size (257 tokens: 224 px images in 14 px patches, as ViT-H/14),
audio features = wav2vec layers x hidden. Random weights draw noise, but every file goes
through the same loaders, and the same code paths, as the real 14B release.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch

T5_WIDTH = 32
CLIP_WIDTH = 64  # one 64-wide head: the width the CLIP loader infers a single head for
WAV2VEC_HIDDEN, WAV2VEC_LAYERS = 64, 2
TEXT_LEN = 512  # room for the official negative prompt, as tokenised by the tiny vocabulary


@dataclass(frozen=True)
class TinyWeights:
    """Paths of the written files, one per loader input of the workflows."""

    dit: str
    audio_weights: str
    text_encoder: str
    clip_vision: str
    vae: str
    wav2vec: str
    anytalker_dit: str = ""  # a tiny AnyTalker 1.3B-style checkpoint (.pth as released)
    anytalker_wav2vec: str = ""  # model.safetensors inside a tiny wav2vec2-base-960h-style folder


def write_tiny_weights(folder: str, seed: int = 0) -> TinyWeights:
    """Write every tiny model into `folder` (created if needed) and return their paths."""
    os.makedirs(folder, exist_ok=True)
    dit, audio = _write_dit(folder, seed)
    return TinyWeights(dit=dit, audio_weights=audio, text_encoder=_write_text_encoder(folder, seed),
                       clip_vision=_write_clip(folder, seed), vae=_write_vae(folder, seed),
                       wav2vec=_write_wav2vec(folder, seed), anytalker_dit=_write_anytalker(folder, seed),
                       anytalker_wav2vec=_write_wav2vec_960h(folder, seed))


def _write_dit(folder: str, seed: int) -> tuple[str, str]:
    from ..models.dit.tiny import save_tiny_dit, tiny_dit_config

    config = tiny_dit_config().with_overrides(text_dim=T5_WIDTH, clip_dim=CLIP_WIDTH, text_len=TEXT_LEN,
                                              audio_feature_dim=WAV2VEC_LAYERS * WAV2VEC_HIDDEN)
    return save_tiny_dit(folder, config, seed)


def _write_anytalker(folder: str, seed: int) -> str:
    from ..models.anytalker.tiny import save_tiny_anytalker, tiny_anytalker_config

    config = tiny_anytalker_config(text_dim=T5_WIDTH, clip_dim=CLIP_WIDTH, audio_layers=WAV2VEC_LAYERS,
                                   audio_hidden=WAV2VEC_HIDDEN)
    return save_tiny_anytalker(os.path.join(folder, "tiny_anytalker_1_3B.pth"), config, seed)


def _write_text_encoder(folder: str, seed: int) -> str:
    """ComfyUI's layout: Hugging Face keys in bf16 with the sentencepiece model as a uint8 tensor."""
    from safetensors.torch import save_file

    from ..models.encoders.tiny import tiny_sentencepiece, tiny_text_encoder_state

    state = {k: v.to(torch.bfloat16) for k, v in tiny_text_encoder_state(d_model=T5_WIDTH, seed=seed).items()}
    state["spiece_model"] = torch.frombuffer(bytearray(tiny_sentencepiece()), dtype=torch.uint8)
    path = os.path.join(folder, "tiny_umt5_bf16.safetensors")
    save_file(state, path)
    return path


def _write_clip(folder: str, seed: int) -> str:
    from safetensors.torch import save_file

    from ..models.encoders.tiny import tiny_clip_state

    state = tiny_clip_state(hidden=CLIP_WIDTH, layers=2, heads=1, patch=14, image=224,
                            intermediate=2 * CLIP_WIDTH, seed=seed)
    path = os.path.join(folder, "tiny_clip_vision.safetensors")
    save_file({k: v.to(torch.float16) for k, v in state.items()}, path)
    return path


def _write_vae(folder: str, seed: int) -> str:
    from safetensors.torch import save_file

    from ..models.encoders.tiny import tiny_vae_state, to_original_vae_layout

    path = os.path.join(folder, "tiny_wan_2.1_vae.safetensors")
    save_file(to_original_vae_layout(tiny_vae_state(base_dim=8, seed=seed)), path)
    return path


def _tiny_wav2vec_config():
    from transformers import Wav2Vec2Config

    return Wav2Vec2Config(hidden_size=WAV2VEC_HIDDEN, num_hidden_layers=WAV2VEC_LAYERS, num_attention_heads=1,
                          intermediate_size=2 * WAV2VEC_HIDDEN, conv_dim=[16] * 7, feat_extract_norm="group",
                          num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, vocab_size=32)


def _write_wav2vec(folder: str, seed: int) -> str:
    """A group-norm wav2vec2 (the chinese-wav2vec2-base structure) as one .safetensors file."""
    from safetensors.torch import save_file
    from transformers import Wav2Vec2Model

    torch.manual_seed(seed)
    state = {k: v.contiguous() for k, v in Wav2Vec2Model(_tiny_wav2vec_config()).state_dict().items()}
    path = os.path.join(folder, "tiny_wav2vec2.safetensors")
    save_file(state, path)
    return path


def _write_wav2vec_960h(folder: str, seed: int) -> str:
    """The same structure as facebook/wav2vec2-base-960h ships: a Hugging Face folder with a CTC head
    (`wav2vec2.*` + `lm_head.*`), its config and preprocessor config (do_normalize: true)."""
    import json

    from safetensors.torch import save_file
    from transformers import Wav2Vec2ForCTC

    torch.manual_seed(seed + 1)
    config = _tiny_wav2vec_config()
    config.architectures = ["Wav2Vec2ForCTC"]
    model = Wav2Vec2ForCTC(config)
    target = os.path.join(folder, "tiny_wav2vec2_base_960h")
    os.makedirs(target, exist_ok=True)
    config.save_pretrained(target)
    preprocessor = {"do_normalize": True, "feature_extractor_type": "Wav2Vec2FeatureExtractor", "feature_size": 1,
                    "padding_side": "right", "padding_value": 0.0, "return_attention_mask": False,
                    "sampling_rate": 16000}
    with open(os.path.join(target, "preprocessor_config.json"), "w", encoding="utf-8") as handle:
        json.dump(preprocessor, handle, indent=2)
    path = os.path.join(target, "model.safetensors")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path)
    return path
