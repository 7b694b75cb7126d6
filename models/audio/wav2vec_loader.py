"""Loading a wav2vec2 model (Hugging Face folder or single weights file) into transformers.

A single file carries no config, so the architecture is read off the weights: conv layers
(count, widths, kernels, bias, group vs layer norm), hidden size, layer count, FFN width
and the positional convolution. Two things are not in the weights and follow wav2vec2
convention: conv strides (5 for the first layer, 2 after) and attention heads
(hidden/64, e.g. 12 for 768; pass `num_attention_heads` for unusual sizes).
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Optional

import torch

from ..errors import CheckpointError
from ..output_files import note_input
from ..weights import dequantized, empty_weights, materialize, open_weights

_MODEL_PREFIXES = ("feature_extractor.", "feature_projection.", "encoder.")
_POS_CONV = "encoder.pos_conv_embed.conv."
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
# TencentGameMate/chinese-wav2vec2-base (the MultiTalk/InfiniteTalk audio encoder) ships
# `do_normalize: false`; files without a preprocessor config (ComfyUI's single-file repack)
# must compute what that folder computes.
RELEASED_DO_NORMALIZE = False
# Which model family an encoder's features are for. MultiTalk / InfiniteTalk were trained on
# TencentGameMate/chinese-wav2vec2-base (a pre-trained model, no CTC head); AnyTalker on
# facebook/wav2vec2-base-960h, an English CTC fine-tune (`lm_head.*`, Wav2Vec2ForCTC).
WAV2VEC_MULTITALK = "multitalk"
WAV2VEC_ANYTALKER = "anytalker"
WAV2VEC_FAMILIES = {WAV2VEC_MULTITALK: "chinese-wav2vec2-base (MultiTalk / InfiniteTalk)",
                    WAV2VEC_ANYTALKER: "wav2vec2-base-960h (AnyTalker)"}


@dataclass
class Wav2VecEncoder:
    """The MULTITALK_WAV2VEC object: a transformers Wav2Vec2Model in eval mode."""

    model: torch.nn.Module  # transformers Wav2Vec2Model
    do_normalize: bool  # zero-mean/unit-variance input normalisation (preprocessor config)
    source: str  # file or folder it was loaded from
    family: str = WAV2VEC_MULTITALK  # the model family its features are for (WAV2VEC_FAMILIES)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def num_layers(self) -> int:
        return int(self.model.config.num_hidden_layers)

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)


def load_wav2vec(
    path: str,
    dtype: torch.dtype = torch.float32,
    num_attention_heads: Optional[int] = None,
    attn_implementation: str = "sdpa",
    family: Optional[str] = None,
) -> Wav2VecEncoder:
    """Load a wav2vec2 from a Hugging Face folder or a .safetensors/.bin file (on CPU).

    `attn_implementation` "sdpa" keeps attention memory linear in the clip length (the
    official code's "eager" materialises T x T scores per head); both give the same features.
    `family` (WAV2VEC_FAMILIES) says which model family the features are for; None reads it off the
    file: a CTC head (or a Wav2Vec2ForCTC config) is wav2vec2-base-960h, AnyTalker's encoder.
    """
    if family is not None and family not in WAV2VEC_FAMILIES:
        raise CheckpointError(f"Unknown wav2vec family '{family}': choose one of {', '.join(WAV2VEC_FAMILIES)}.")
    path = os.path.expanduser(str(path))
    note_input(path)  # a folder records its config and weights files
    config_dict, do_normalize = None, RELEASED_DO_NORMALIZE
    if os.path.isdir(path):
        config_dict, do_normalize = _read_folder_configs(path)
        weights_path = _folder_weights(path)
    elif os.path.isfile(path):
        weights_path = path
        # A weights file chosen inside a Hugging Face folder keeps that folder's configs.
        sibling_config, sibling_normalize = _read_folder_configs(os.path.dirname(path) or ".")
        if sibling_config is not None and sibling_config.get("model_type") == "wav2vec2":
            config_dict, do_normalize = sibling_config, sibling_normalize
    else:
        raise CheckpointError(
            f"wav2vec2 path '{path}' does not exist: give a Hugging Face folder or a .safetensors file."
        )
    raw = _read_weights(weights_path)
    family = family or detect_wav2vec_family(raw, config_dict)
    state = normalize_state_dict(raw, weights_path)
    config = _build_config(config_dict or infer_config(state, weights_path), num_attention_heads, attn_implementation)
    model = _instantiate(config, state, weights_path)
    return Wav2VecEncoder(model=model.to(dtype).eval(), do_normalize=do_normalize, source=path, family=family)


def detect_wav2vec_family(state: dict, config: Optional[dict]) -> str:
    """WAV2VEC_ANYTALKER for a CTC fine-tune (wav2vec2-base-960h), else WAV2VEC_MULTITALK."""
    architectures = (config or {}).get("architectures") or []
    if "lm_head.weight" in state or "Wav2Vec2ForCTC" in architectures:
        return WAV2VEC_ANYTALKER
    return WAV2VEC_MULTITALK


def _read_folder_configs(folder: str) -> tuple[Optional[dict], bool]:
    """(config.json or None, do_normalize): a preprocessor config decides the input
    normalisation (Hugging Face's default when it omits the field is True); without one the
    model is taken for the released chinese-wav2vec2-base, whose config says False."""
    config_dict, do_normalize = None, RELEASED_DO_NORMALIZE
    config_path = os.path.join(folder, "config.json")
    if os.path.isfile(config_path):
        with open(config_path, encoding="utf-8") as handle:
            config_dict = json.load(handle)
    pre_path = os.path.join(folder, "preprocessor_config.json")
    if os.path.isfile(pre_path):
        with open(pre_path, encoding="utf-8") as handle:
            do_normalize = bool(json.load(handle).get("do_normalize", True))
    return config_dict, do_normalize


def _folder_weights(folder: str) -> str:
    for name in _WEIGHT_FILES:
        if os.path.isfile(os.path.join(folder, name)):
            return os.path.join(folder, name)
    candidates = sorted(f for f in os.listdir(folder) if f.endswith((".safetensors", ".bin")))
    if len(candidates) == 1:
        return os.path.join(folder, candidates[0])
    raise CheckpointError(
        f"Folder '{folder}' has no single wav2vec2 weights file (looked for {', '.join(_WEIGHT_FILES)}; "
        f"found {candidates or 'none'})."
    )


def _read_weights(path: str) -> dict[str, torch.Tensor]:
    weights = open_weights(path, CheckpointError, allow_folder=False)
    return dict(dequantized(weights))  # fp8 files dequantised; other tensors keep their dtype


def normalize_state_dict(state: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """Strip a 'wav2vec2.' prefix, keep the base model's keys, and name the positional
    convolution's weight norm as torch's parametrization does (original0 = g, original1 = v)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        key = key[len("wav2vec2."):] if key.startswith("wav2vec2.") else key
        if key.startswith(_MODEL_PREFIXES):
            out[key] = value
    if "feature_projection.projection.weight" not in out:
        found = sorted({k.split(".")[0] for k in state})[:8]
        raise CheckpointError(
            f"'{source}' is not a wav2vec2 checkpoint: no feature_projection.projection.weight "
            f"(top-level key groups found: {', '.join(found) or 'none'}). Choose a wav2vec2 file such as "
            "chinese-wav2vec2-base."
        )
    renames = {"weight_g": "parametrizations.weight.original0", "weight_v": "parametrizations.weight.original1"}
    for old, new in renames.items():
        if _POS_CONV + old in out:
            out[_POS_CONV + new] = out.pop(_POS_CONV + old)
    if _POS_CONV + "weight" in out:  # weight norm folded into a plain weight: split it back exactly
        weight = out.pop(_POS_CONV + "weight")  # [H, H/groups, K]
        out[_POS_CONV + "parametrizations.weight.original1"] = weight
        g = weight.float().norm(dim=(0, 1), keepdim=True)  # [1, 1, K]
        out[_POS_CONV + "parametrizations.weight.original0"] = g.to(weight.dtype)
    return out


def _count(state: dict, pattern: str) -> int:
    ids = {int(m.group(1)) for k in state if (m := re.match(pattern, k))}
    return max(ids) + 1 if ids else 0


def infer_config(state: dict[str, torch.Tensor], source: str = "") -> dict:
    """Wav2Vec2Config fields read off a normalised state dict."""
    conv_layers = _count(state, r"feature_extractor\.conv_layers\.(\d+)\.conv\.weight")
    layers = _count(state, r"encoder\.layers\.(\d+)\.")
    pos_v = state.get(_POS_CONV + "parametrizations.weight.original1")
    if conv_layers == 0 or layers == 0 or pos_v is None:
        raise CheckpointError(
            f"'{source}' lacks parts of a wav2vec2 model (conv layers: {conv_layers}, encoder layers: {layers}, "
            f"positional conv: {'yes' if pos_v is not None else 'no'})."
        )
    convs = [state[f"feature_extractor.conv_layers.{i}.conv.weight"] for i in range(conv_layers)]  # [out, in, k]
    hidden = int(state["feature_projection.projection.weight"].shape[0])
    norm = "layer" if "feature_extractor.conv_layers.1.layer_norm.weight" in state else "group"
    return {
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "intermediate_size": int(state["encoder.layers.0.feed_forward.intermediate_dense.weight"].shape[0]),
        "conv_dim": [int(w.shape[0]) for w in convs],
        "conv_kernel": [int(w.shape[2]) for w in convs],
        "conv_stride": [5] + [2] * (conv_layers - 1),
        "conv_bias": "feature_extractor.conv_layers.0.conv.bias" in state,
        "feat_extract_norm": norm,
        # Large (layer-norm) wav2vec2 variants are pre-LN; the base family is post-LN.
        "do_stable_layer_norm": norm == "layer",
        "num_conv_pos_embeddings": int(pos_v.shape[2]),
        "num_conv_pos_embedding_groups": hidden // int(pos_v.shape[1]),
    }


def _build_config(fields: dict, num_attention_heads: Optional[int], attn_implementation: str):
    from transformers import Wav2Vec2Config

    fields = dict(fields)
    if num_attention_heads:
        fields["num_attention_heads"] = int(num_attention_heads)
    elif "num_attention_heads" not in fields:
        hidden = int(fields["hidden_size"])
        if hidden % 64:
            raise CheckpointError(
                f"Cannot infer the attention heads of a wav2vec2 with hidden size {hidden} (not a multiple of 64): "
                "set the number of attention heads explicitly."
            )
        fields["num_attention_heads"] = hidden // 64
    # Inference only: no SpecAugment embedding, no dropout paths.
    fields.update(mask_time_prob=0.0, mask_feature_prob=0.0)
    config = Wav2Vec2Config(**fields)
    config._attn_implementation = attn_implementation
    return config


def _instantiate(config, state: dict[str, torch.Tensor], source: str) -> torch.nn.Module:
    from transformers import Wav2Vec2Model

    with empty_weights():  # no random init of ~95M parameters that the file overwrites anyway
        model = Wav2Vec2Model(config)
    state = {k: v for k, v in state.items() if k != "masked_spec_embed"}
    return materialize(model, state, "wav2vec2", CheckpointError, source)
