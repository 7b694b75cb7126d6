"""The umt5 prompt tokenizer: sentencepiece bytes from the weights file, or a tokenizer folder.

The official pipeline cleans the prompt (ftfy, HTML unescape, collapsed whitespace), appends
the end-of-sequence token and truncates to 512 tokens; the encoder then sees only the valid
tokens. Both sources below produce those same ids.
"""
from __future__ import annotations

import html
import logging
import os
import re

import torch

from ..errors import EncoderInputError

MAX_TOKENS = 512
# Where the official Wan release keeps the tokenizer beside models_t5_umt5-xxl-enc-bf16.pth.
RELEASE_TOKENIZER_DIR = os.path.join("google", "umt5-xxl")


def clean_prompt(text: str) -> str:
    """The official prompt cleaning: ftfy repair, HTML unescape twice, single spaces."""
    try:
        import ftfy

        text = ftfy.fix_text(text)
    except ImportError:  # ftfy only repairs mojibake/quotes; prompts typed in a UI rarely need it
        logging.getLogger(__name__).debug("ftfy not installed: skipping its text repair")
    text = html.unescape(html.unescape(text)).strip()
    return re.sub(r"\s+", " ", text).strip()


class PromptTokenizer:
    """Text -> token ids (with the end token, at most `max_tokens`)."""

    def __init__(self, encode_fn, source: str, max_tokens: int = MAX_TOKENS):
        self._encode = encode_fn
        self.source = source
        self.max_tokens = max_tokens

    def ids(self, text: str) -> list[int]:
        ids = self._encode(clean_prompt(text))
        return ids[: self.max_tokens - 1] + ids[-1:] if len(ids) > self.max_tokens else ids

    @classmethod
    def from_sentencepiece(cls, model_proto: bytes, source: str) -> "PromptTokenizer":
        import sentencepiece

        try:
            sp = sentencepiece.SentencePieceProcessor(model_proto=model_proto)
        except Exception as exc:
            raise EncoderInputError(f"The sentencepiece tokenizer in {source} is unreadable ({exc}).") from exc
        eos = sp.eos_id()
        if eos < 0:
            raise EncoderInputError(f"The sentencepiece tokenizer in {source} has no end-of-sequence token.")
        return cls(lambda text: list(sp.encode(text)) + [eos], source)

    @classmethod
    def from_tokenizer_json(cls, path: str) -> "PromptTokenizer":
        from tokenizers import Tokenizer

        try:
            tok = Tokenizer.from_file(path)
        except Exception as exc:
            raise EncoderInputError(f"Cannot read the tokenizer '{path}' ({exc}).") from exc
        tok.no_truncation()
        tok.no_padding()
        return cls(lambda text: list(tok.encode(text, add_special_tokens=True).ids), path)

    @classmethod
    def from_path(cls, path: str) -> "PromptTokenizer":
        """A tokenizer folder (tokenizer.json or spiece.model) or one of those files."""
        if os.path.isdir(path):
            for name in ("tokenizer.json", "spiece.model"):
                if os.path.isfile(os.path.join(path, name)):
                    return cls.from_path(os.path.join(path, name))
            raise EncoderInputError(
                f"The tokenizer folder '{path}' has neither tokenizer.json nor spiece.model. "
                "Use the google/umt5-xxl folder of the Wan2.1 release."
            )
        if not os.path.isfile(path):
            raise EncoderInputError(f"Tokenizer '{path}' does not exist.")
        if path.endswith(".json"):
            return cls.from_tokenizer_json(path)
        with open(path, "rb") as handle:
            return cls.from_sentencepiece(handle.read(), path)


def embedded_spiece(tensor: torch.Tensor) -> bytes:
    """The sentencepiece model bytes ComfyUI stores as a uint8 tensor named `spiece_model`."""
    return tensor.to(torch.uint8).numpy().tobytes()


def find_tokenizer(weights_path: str, tokenizer_path: str, embedded: torch.Tensor | None) -> PromptTokenizer:
    """The tokenizer to use: an explicit path, else the one in the file, else the release folder."""
    if tokenizer_path:
        return PromptTokenizer.from_path(tokenizer_path)
    if embedded is not None:
        return PromptTokenizer.from_sentencepiece(embedded_spiece(embedded), f"'{weights_path}'")
    beside = os.path.join(os.path.dirname(os.path.abspath(weights_path)), RELEASE_TOKENIZER_DIR)
    if os.path.isdir(beside):
        return PromptTokenizer.from_path(beside)
    raise EncoderInputError(
        f"'{weights_path}' holds no tokenizer (no 'spiece_model' tensor) and none was given. "
        "Set the tokenizer input to the google/umt5-xxl folder of the Wan2.1 release "
        "(or to its spiece.model / tokenizer.json), or use ComfyUI's umt5_xxl text-encoder file."
    )
