"""AnyTalker (HKUST-C4G): audio-driven talking video for N identities on the Wan2.1 backbone.

Model core: config inference from the weights, the DiT with both audio-face variants (1.3B
`a2v_af`, 14B legacy), loading and the family check; and the official pipeline's input builders
(faces, masks, audio features, size and frame count, UniPC sampling). Wiring into the pack: the
audio object (audio_timeline), the face layout (layout), the adapter that runs AnyTalker in the
pack's sampling loop (sampling), tiny checkpoints (tiny). Facts: FACTS.md of the shared AnyTalker
notes.
"""
from .audio import identity_features, track_features
from .audio_timeline import build_anytalker_audio
from .config import VARIANT_AF, VARIANT_LEGACY, AnyTalkerConfig, infer_anytalker_config
from .faces import (FaceRegions, crop_face, detect_face_regions, faces_from_boxes, faces_from_detections,
                    faces_from_masks)
from .family import (ANYTALKER_FAMILIES, FAMILY_ANYTALKER_AF, FAMILY_ANYTALKER_LEGACY, FAMILY_MULTITALK,
                     FAMILY_WAN, check_audio_fits, check_combination, describe_family, detect_family,
                     model_family)
from .geometry import frame_count, output_size, parse_max_area
from .layout import FaceLayout, build_face_layout
from .loading import load_anytalker, read_weights, sources_family
from .masks import dit_mask, expand_face_masks, token_masks
from .model import AnyTalkerDiT, flatten_face_masks
from .pipeline import AnyTalkerConditions, build_conditions, image_tensor, initial_noise, null_audio, sample
from .sampling import AnyTalkerGenerator
from .schedule import UniPCSampler, guide

__all__ = [
    "ANYTALKER_FAMILIES", "AnyTalkerConditions", "AnyTalkerConfig", "AnyTalkerDiT", "AnyTalkerGenerator",
    "FAMILY_ANYTALKER_AF", "FaceLayout", "build_anytalker_audio", "build_face_layout", "check_audio_fits",
    "model_family", "sources_family",
    "FAMILY_ANYTALKER_LEGACY", "FAMILY_MULTITALK", "FAMILY_WAN", "FaceRegions", "UniPCSampler", "VARIANT_AF",
    "VARIANT_LEGACY", "build_conditions", "check_combination", "crop_face", "describe_family", "detect_face_regions",
    "detect_family", "dit_mask", "expand_face_masks", "faces_from_boxes", "faces_from_detections",
    "faces_from_masks", "flatten_face_masks", "frame_count", "guide", "identity_features", "image_tensor",
    "infer_anytalker_config", "initial_noise", "load_anytalker", "null_audio", "output_size", "parse_max_area",
    "read_weights", "sample", "token_masks", "track_features",
]
