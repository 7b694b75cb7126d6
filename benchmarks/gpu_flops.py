"""FLOPs of one MultiTalk DiT forward, counted from the shapes.

Every matrix product of m x k by k x n counts 2*m*k*n FLOPs (one multiply and one add per
term); convolutions count as the matrix products they are; attention counts its two products
(q.k^T and p.v: 4 * queries * keys * width). Elementwise work (norms, RoPE, softmax, GELU,
modulation) is left out: it is a fraction of a percent at these shapes and no tensor core runs
it. tests/test_bench_gpu.py checks this count against torch's FlopCounterMode on a tiny model.
"""
from __future__ import annotations

from dataclasses import dataclass

CLIP_TOKENS = 257


@dataclass(frozen=True)
class Shapes:
    frames: int  # latent frames t
    height: int  # latent height (pixels / 8)
    width: int  # latent width
    speakers: int
    text_len: int = 512  # the model pads the prompt to this

    @property
    def grid(self) -> tuple[int, int, int]:
        return self.frames, self.height // 2, self.width // 2

    @property
    def tokens(self) -> int:
        t, h, w = self.grid
        return t * h * w


def _mm(m: int, k: int, n: int) -> float:
    return 2.0 * m * k * n


def block_flops(cfg, shapes: Shapes) -> dict[str, float]:
    """FLOPs of one transformer block, by part."""
    length, dim = shapes.tokens, cfg.dim
    t, h, w = shapes.grid
    audio_tokens = shapes.speakers * cfg.audio_tokens
    parts = {
        "linear": (4 * _mm(length, dim, dim)  # self-attention q, k, v, o
                   + 2 * _mm(length, dim, dim)  # cross-attention q, o
                   + 2 * _mm(shapes.text_len, dim, dim) + 2 * _mm(CLIP_TOKENS, dim, dim)  # k, v of text and image
                   + 2 * _mm(length, dim, dim)  # audio q and output projection
                   + _mm(t * audio_tokens, cfg.audio_token_dim, 2 * dim)  # audio k, v
                   + 2 * _mm(length, dim, cfg.ffn_dim)),  # FFN
        "self_attention": 2 * _mm(length, dim, length),
        "cross_attention": 2 * _mm(length, dim, shapes.text_len + CLIP_TOKENS) + 2 * _mm(length, dim, audio_tokens),
    }
    if shapes.speakers > 1:  # adaptive localisation: q . k over the reference frame, then class means
        parts["localisation"] = _mm(length, dim, h * w) + _mm(length, h * w, shapes.speakers + 1) * cfg.num_heads
    return parts


def forward_flops(cfg, shapes: Shapes) -> dict[str, float]:
    """FLOPs of one forward of one batch item, by part (blocks summed over all layers)."""
    parts = {name: value * cfg.num_layers for name, value in block_flops(cfg, shapes).items()}
    length, dim = shapes.tokens, cfg.dim
    pt, ph, pw = cfg.patch_size
    t = shapes.frames
    feature = cfg.audio_feature_dim
    parts["embeddings"] = (_mm(length, cfg.in_dim * pt * ph * pw, dim)  # patch embedding
                           + _mm(shapes.text_len, cfg.text_dim, dim) + _mm(shapes.text_len, dim, dim)
                           + _mm(CLIP_TOKENS, cfg.clip_dim, cfg.clip_dim) + _mm(CLIP_TOKENS, cfg.clip_dim, dim)
                           + _mm(1, cfg.freq_dim, dim) + _mm(1, dim, dim) + _mm(1, dim, 6 * dim)  # time MLPs
                           + _mm(length, dim, pt * ph * pw * cfg.out_dim))  # head
    parts["audio_projection"] = shapes.speakers * (
        _mm(1, cfg.audio_window * feature, cfg.audio_intermediate_dim)
        + _mm(t - 1, cfg.audio_window_vf * feature, cfg.audio_intermediate_dim)
        + _mm(t, cfg.audio_intermediate_dim, cfg.audio_intermediate_dim)
        + _mm(t, cfg.audio_intermediate_dim, cfg.audio_tokens * cfg.audio_token_dim))
    return parts


# Dense (no sparsity) bf16 tensor-core peaks, TFLOP/s, from the vendors' data sheets.
DENSE_BF16_PEAK_TFLOPS = (
    ("H200", 989.4), ("H100 SXM", 989.4), ("H100 NVL", 835.0), ("H100 PCIe", 756.0), ("H100", 989.4),
    ("B200", 2250.0), ("A100", 312.0), ("L40S", 362.0), ("RTX 4090", 165.2), ("RTX 5090", 209.5), ("A10", 125.0),
)


def dense_bf16_peak(device_name: str) -> float | None:
    """TFLOP/s of the named GPU, or None when it is not in the table (pass --peak-tflops)."""
    for marker, peak in DENSE_BF16_PEAK_TFLOPS:
        if marker.lower() in device_name.lower():
            return peak
    return None
