"""Reading weight files of every format users have (safetensors, .pth/.bin, sharded checkpoints,
GGUF), with their quantisation (fp8, scaled fp8, ComfyUI's quantised layout, GGUF blocks), for
the DiT, the encoders and the audio encoder alike: one reader for the whole pack.

Modules: sources (which files a source stands for, checked), formats (opening each format
lazily), layouts (quantisation layouts -> the canonical fp8 + scale_weight form), reader
(`open_weights`, the entry point), fp8 (the one fp8 path), linears (quantised weight kinds and
their layers), modules (dequantising and loading into torch modules).
"""
from .fp8 import FP8_DTYPES, Fp8Linear, dequantize_fp8, is_fp8, quantize_fp8
from .layouts import CanonicalWeights, sample
from .linears import QUANTISED_LINEARS, swap_in_quantized_linears, weight_kind
from .modules import as_dtype, dequantized, empty_weights, materialize, non_persistent_buffers
from .reader import open_weights, source_files, weights_of

__all__ = [
    "FP8_DTYPES", "Fp8Linear", "dequantize_fp8", "is_fp8", "quantize_fp8",
    "CanonicalWeights", "sample",
    "QUANTISED_LINEARS", "swap_in_quantized_linears", "weight_kind",
    "as_dtype", "dequantized", "empty_weights", "materialize", "non_persistent_buffers",
    "open_weights", "source_files", "weights_of",
]
