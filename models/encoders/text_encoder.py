"""umt5-xxl text encoder (Wan's T5) on transformers' UMT5EncoderModel.

Accepts ComfyUI's files (Hugging Face key layout, bf16/fp16/fp8/scaled fp8, the tokenizer
optionally embedded as a `spiece_model` tensor) and the original Wan file
(`models_t5_umt5-xxl-enc-bf16.pth`, its own key names, tokenizer in a folder). The config is
read off the weights, so a tiny test file and the 5.7B-parameter encoder share one path.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import torch

from ..errors import EncoderInputError
from ..weights import dequantized, empty_weights, materialize, open_weights
from .devices import resident
from .kinds import wrong_kind
from .tokenizer import PromptTokenizer, find_tokenizer

# The negative prompt of the official Wan/MultiTalk pipeline (a fact of the method).
DEFAULT_NEGATIVE_PROMPT = (
    "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，"
    "JPEG压缩残留，丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，"
    "手指融合，静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走"
)

_HF_MARKER = "encoder.block.0.layer.0.SelfAttention.q.weight"
_WAN_MARKER = "blocks.0.attn.q.weight"
# Original Wan names (after "blocks.{i}.") -> Hugging Face names (after "encoder.block.{i}.").
_WAN_BLOCK_NAMES = {
    "attn.q": "layer.0.SelfAttention.q",
    "attn.k": "layer.0.SelfAttention.k",
    "attn.v": "layer.0.SelfAttention.v",
    "attn.o": "layer.0.SelfAttention.o",
    "pos_embedding.embedding": "layer.0.SelfAttention.relative_attention_bias",
    "norm1": "layer.0.layer_norm",
    "norm2": "layer.1.layer_norm",
    "ffn.gate.0": "layer.1.DenseReluDense.wi_0",
    "ffn.fc1": "layer.1.DenseReluDense.wi_1",
    "ffn.fc2": "layer.1.DenseReluDense.wo",
}
_WAN_BLOCK_RE = re.compile(r"^blocks\.(\d+)\.(.+)\.(weight|bias)$")
_TOP_LEVEL = {"shared.weight", "encoder.embed_tokens.weight", "encoder.final_layer_norm.weight"}


def wan_key_to_hf(key: str) -> str | None:
    """One original Wan T5 key -> its Hugging Face UMT5 name (None: not part of the encoder)."""
    if key == "token_embedding.weight":
        return "shared.weight"
    if key == "norm.weight":
        return "encoder.final_layer_norm.weight"
    match = _WAN_BLOCK_RE.match(key)
    if match and match.group(2) in _WAN_BLOCK_NAMES:
        return f"encoder.block.{match.group(1)}.{_WAN_BLOCK_NAMES[match.group(2)]}.{match.group(3)}"
    return None


def key_renamer(keys: list[str], path: str) -> Callable[[str], str | None]:
    """The key mapping for the file's layout; raises EncoderInputError for other kinds of file."""
    hf_key = next((k for k in keys if k.endswith(_HF_MARKER)), None)
    if hf_key is not None:
        prefix = hf_key[: -len(_HF_MARKER)]
        return lambda k: k[len(prefix):] if k.startswith(prefix) else None
    if _WAN_MARKER in keys:
        return wan_key_to_hf
    raise EncoderInputError(wrong_kind(
        path, keys, "the umt5-xxl text encoder used by Wan",
        "Use umt5_xxl_*.safetensors (ComfyUI) or models_t5_umt5-xxl-enc-bf16.pth (Wan release).",
    ))


def hf_state_dict(weights, path: str, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Any supported layout -> UMT5EncoderModel keys (with `encoder.embed_tokens` tied)."""
    rename = key_renamer(list(weights.keys()), path)
    def wanted(key: str) -> bool:
        new = rename(key)
        return new is not None and (new.startswith("encoder.block.") or new in _TOP_LEVEL)

    state = {rename(key): tensor for key, tensor in dequantized(weights, dtype, keep=wanted)}
    if "shared.weight" not in state and "encoder.embed_tokens.weight" in state:
        state["shared.weight"] = state["encoder.embed_tokens.weight"]
    if "shared.weight" not in state:
        raise EncoderInputError(f"'{path}' has no token embedding ('shared.weight' / 'token_embedding.weight').")
    state["encoder.embed_tokens.weight"] = state["shared.weight"]
    return state


def infer_config(state: dict[str, torch.Tensor]):
    """UMT5Config from tensor shapes: width, depth, heads, feed-forward size, vocabulary."""
    from transformers import UMT5Config

    vocab, d_model = state["shared.weight"].shape
    layers = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("encoder.block."))
    attn = "encoder.block.0.layer.0.SelfAttention"
    buckets, heads = state[f"{attn}.relative_attention_bias.weight"].shape
    d_ff = state["encoder.block.0.layer.1.DenseReluDense.wi_0.weight"].shape[0]
    return UMT5Config(
        vocab_size=vocab, d_model=d_model, d_kv=state[f"{attn}.q.weight"].shape[0] // heads,
        d_ff=d_ff, num_layers=layers, num_heads=heads, relative_attention_num_buckets=buckets,
        relative_attention_max_distance=128, feed_forward_proj="gated-gelu",
        layer_norm_epsilon=1e-6, dropout_rate=0.0, is_encoder_decoder=False,
        tie_word_embeddings=True, pad_token_id=0, eos_token_id=1,
    )


@dataclass
class WanTextEncoder:
    """umt5 encoder + tokenizer. `encode(text)` -> [1, L, d_model] float32 on the CPU.

    The weights live on `offload_device` and visit `device` for each encode.
    """

    model: torch.nn.Module
    tokenizer: PromptTokenizer
    device: torch.device
    dtype: torch.dtype
    offload_device: torch.device = torch.device("cpu")

    @property
    def dim(self) -> int:
        return self.model.config.d_model

    @torch.no_grad()
    def encode(self, text: str) -> torch.Tensor:
        """Prompt -> embeddings of its valid tokens only (end token included), like Wan's pipeline.

        Running the valid tokens alone equals the official pad-to-512 + attention-mask pass:
        masked positions receive no attention and the relative bias depends only on offsets.
        """
        if not isinstance(text, str):
            raise EncoderInputError(f"The prompt must be text, got {type(text).__name__}: type the prompt, or "
                                    "connect a STRING output.")
        ids = torch.tensor([self.tokenizer.ids(text)], dtype=torch.long)  # [1, L]
        if int(ids.max()) >= self.model.config.vocab_size:
            raise EncoderInputError(
                f"The tokenizer ({self.tokenizer.source}) yields token id {int(ids.max())}, beyond "
                f"the encoder's vocabulary of {self.model.config.vocab_size}: they do not belong together."
            )
        with resident(self.model, self.device, self.offload_device):
            ids = ids.to(self.device)
            hidden = self.model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
            return hidden.float().cpu()  # [1, L, d_model]

    def conditioning(self, text: str) -> list:
        """ComfyUI CONDITIONING: [[tensor [1, L, d_model], {}]]."""
        return [[self.encode(text), {}]]


def load_text_encoder(path: str, tokenizer_path: str = "", device: torch.device | str = "cpu",
                      dtype: torch.dtype = torch.bfloat16,
                      offload_device: torch.device | str = "cpu") -> WanTextEncoder:
    """Build the umt5 encoder from a file in either layout, cast to `dtype`.

    It computes on `device` and rests on `offload_device` (the CPU by default, so the 11 GB
    encoder does not stay in VRAM during sampling).
    """
    from transformers import UMT5EncoderModel

    weights = open_weights(path, EncoderInputError, allow_folder=False)
    key_renamer(list(weights.keys()), path)  # a wrong kind of file fails before the tokenizer search
    embedded = weights["spiece_model"] if "spiece_model" in weights else None
    tokenizer = find_tokenizer(path, tokenizer_path, embedded)
    state = hf_state_dict(weights, path, dtype)
    config = infer_config(state)
    with empty_weights():
        model = UMT5EncoderModel(config)
    materialize(model, state, "umt5 text encoder", EncoderInputError, path)
    model.encoder.embed_tokens = model.shared  # keep the tie after assign-loading
    offload = torch.device(offload_device)
    return WanTextEncoder(model.to(offload), tokenizer, torch.device(device), dtype, offload)
