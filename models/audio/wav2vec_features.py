"""wav2vec2 features exactly as the official MultiTalk pipeline computes them.

Official order: zero-mean/unit-variance input -> CNN feature encoder -> linear
interpolation (align_corners=True) of the CNN frames (50 Hz) to the video frame count ->
feature projection -> transformer encoder -> hidden states after each layer stacked.

Memory: the CNN's first layer makes 512 channels at 3.2 kHz, 4 GB for 10 minutes, and its
group norm needs statistics over the whole clip. We run the CNN in chunks (exact: no
padding, so each output frame depends only on its receptive field) with the first layer
normalised by whole-clip statistics gathered in a cheap first pass. The transformer always
sees the whole clip (chunking it would change the features); with the "sdpa" attention
implementation its memory grows linearly with the length.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import AudioInputError
from .wav2vec_loader import Wav2VecEncoder

CNN_CHUNK_FRAMES = 500  # CNN output frames (20 ms each) per chunk: ~65 MB per activation at 512 channels


def normalize_input(samples: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance over the clip, in float32 numpy exactly like transformers'
    Wav2Vec2FeatureExtractor (the official code's preprocessing)."""
    x = np.asarray(samples, dtype=np.float32)
    return (x - x.mean()) / np.sqrt(x.var() + 1e-7)


def receptive_field(config) -> tuple[int, int]:
    """(samples seen by one CNN output frame, samples between output frames): (400, 320)."""
    field, stride = 1, 1
    for kernel, step in zip(config.conv_kernel, config.conv_stride):
        field += (kernel - 1) * stride
        stride *= step
    return field, stride


def cnn_frame_count(num_samples: int, config) -> int:
    n = num_samples
    for kernel, step in zip(config.conv_kernel, config.conv_stride):
        n = (n - kernel) // step + 1 if n >= kernel else 0
    return n


def _first_layer_stats(layer0, speech: torch.Tensor, chunk: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and biased variance of the first conv's output over the whole clip.

    Chunked and merged with Chan's parallel formula in float64, so it never holds the
    whole [channels, samples/5] activation."""
    conv = layer0.conv
    kernel, step = conv.kernel_size[0], conv.stride[0]
    total = (speech.shape[-1] - kernel) // step + 1
    count, mean, m2 = 0, None, None
    for a in range(0, total, chunk):
        b = min(a + chunk, total)
        h = conv(speech[..., a * step : (b - 1) * step + kernel])[0]  # [C, b-a]
        n = b - a
        c_mean = h.mean(dim=-1).double()
        c_m2 = h.var(dim=-1, unbiased=False).double() * n
        if mean is None:
            count, mean, m2 = n, c_mean, c_m2
            continue
        delta = c_mean - mean
        new_count = count + n
        mean = mean + delta * n / new_count
        m2 = m2 + c_m2 + delta.square() * count * n / new_count
        count = new_count
    return mean, m2 / count


def _cnn_chunk(layers, x: torch.Tensor, stats: Optional[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Run the conv stack on a slice [1, 1, n]; group-norm layer 0 uses whole-clip stats."""
    for index, layer in enumerate(layers):
        if index == 0 and stats is not None:
            norm = layer.layer_norm
            mean, var = stats
            h = layer.conv(x)  # [1, C, t]
            scale = (norm.weight.double() / torch.sqrt(var + norm.eps)).to(h.dtype)  # [C]
            shift = (norm.bias.double() - mean * norm.weight.double() / torch.sqrt(var + norm.eps)).to(h.dtype)
            x = layer.activation(h * scale[:, None] + shift[:, None])
        else:
            x = layer(x)
    return x


def cnn_features(model, speech: torch.Tensor, chunk_frames: Optional[int] = CNN_CHUNK_FRAMES) -> torch.Tensor:
    """CNN feature encoder output [1, C, frames] for speech [1, samples].

    `chunk_frames` None runs the whole clip at once (the official path, for comparison);
    clips of at most `chunk_frames` frames take that path too."""
    extractor, config = model.feature_extractor, model.config
    field, stride = receptive_field(config)
    total = cnn_frame_count(speech.shape[-1], config)
    if chunk_frames is None or total <= chunk_frames:  # one chunk: the library's own path
        return extractor(speech)
    stats = None
    if config.feat_extract_norm == "group":
        first_layer_chunk = chunk_frames * stride // config.conv_stride[0]
        stats = _first_layer_stats(extractor.conv_layers[0], speech[:, None], first_layer_chunk)
    pieces = []
    for a in range(0, total, chunk_frames):
        b = min(a + chunk_frames, total)
        piece = speech[:, None, a * stride : (b - 1) * stride + field]  # [1, 1, n]
        pieces.append(_cnn_chunk(extractor.conv_layers, piece, stats))
    return torch.cat(pieces, dim=-1)


def _run_encoder(model, features: torch.Tensor) -> torch.Tensor:
    """Projection + transformer on ready CNN features [1, C, T] -> hidden states [T, L, H].

    The whole transformers model runs (so it collects the hidden states as it does for
    the official code); a forward hook swaps the feature encoder's output for our
    features, and a one-frame dummy waveform keeps its own conv work negligible."""
    field, _ = receptive_field(model.config)
    dummy = torch.zeros(1, field, dtype=features.dtype, device=features.device)
    handle = model.feature_extractor.register_forward_hook(lambda module, args, output: features)
    try:
        out = model(dummy, output_hidden_states=True)
    finally:
        handle.remove()
    # hidden_states[0] is the encoder input (before any layer): the official code drops it.
    return torch.stack(out.hidden_states[1:], dim=2)[0]  # [T, L, H]


def encode_track(
    encoder: Wav2VecEncoder,
    samples: np.ndarray,
    num_frames: int,
    chunk_frames: Optional[int] = CNN_CHUNK_FRAMES,
) -> torch.Tensor:
    """wav2vec2 features of one 16 kHz mono track -> float32 CPU [num_frames, layers, hidden].

    Runs on the device the model is on (move `encoder.model` first to use a GPU)."""
    model = encoder.model
    field, _ = receptive_field(model.config)
    if samples.shape[0] < field:
        raise AudioInputError(
            f"Audio of {samples.shape[0]} samples is shorter than wav2vec2's {field}-sample window "
            f"({field / 16000 * 1000:.0f} ms): give longer audio."
        )
    if num_frames < 1:
        raise AudioInputError(f"Cannot compute features for {num_frames} video frames: need at least 1.")
    device = next(model.parameters()).device
    x = normalize_input(samples) if encoder.do_normalize else np.asarray(samples, dtype=np.float32)
    speech = torch.from_numpy(np.ascontiguousarray(x))[None].to(device=device, dtype=encoder.dtype)  # [1, N]
    with torch.inference_mode():
        feats = cnn_features(model, speech, chunk_frames)  # [1, C, T_cnn] at 50 Hz
        feats = F.interpolate(feats, size=num_frames, mode="linear", align_corners=True)  # [1, C, num_frames]
        hidden = _run_encoder(model, feats)
    return hidden.float().cpu()
