"""AnyTalker (HKUST-C4G): audio-driven talking video for N identities on the Wan2.1 backbone.

Model core (config inference, the DiT with both audio-face variants, loading, the family check)
and the official pipeline's input builders. See ../../docs and /shared/anytalker/FACTS.md.
"""
from .config import VARIANT_AF, VARIANT_LEGACY, AnyTalkerConfig, infer_anytalker_config
from .family import (ANYTALKER_FAMILIES, FAMILY_ANYTALKER_AF, FAMILY_ANYTALKER_LEGACY, FAMILY_MULTITALK,
                     FAMILY_WAN, check_combination, describe_family, detect_family)
from .loading import load_anytalker, read_weights
from .model import AnyTalkerDiT, flatten_face_masks

__all__ = [
    "ANYTALKER_FAMILIES", "AnyTalkerConfig", "AnyTalkerDiT", "FAMILY_ANYTALKER_AF", "FAMILY_ANYTALKER_LEGACY",
    "FAMILY_MULTITALK", "FAMILY_WAN", "VARIANT_AF", "VARIANT_LEGACY", "check_combination", "describe_family",
    "detect_family", "flatten_face_masks", "infer_anytalker_config", "load_anytalker", "read_weights",
]
