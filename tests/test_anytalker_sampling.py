"""AnyTalker through the pack's sampling loop (models/anytalker/sampling.py).

Single mode with a window of the whole clip must be the official one-pass generation: the
loop reproduces `WanAF2V.generate` (../shared/golden/anytalker_e2e_cases: 3 UniPC steps, guide
4.5, seed 44, two speakers) to the golden pass mark, for both variants, with the VAE stubbed by
the golden's stored latent and CLIP by its stored features, as in the official run.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from comfyui_multitalk.models.anytalker.faces import faces_from_detections
from comfyui_multitalk.models.anytalker.masks import dit_mask
from comfyui_multitalk.models.anytalker.pipeline import identities, image_tensor, resized_image
from comfyui_multitalk.models.anytalker.sampling import AnyTalkerGenerator
from comfyui_multitalk.models.encoders.vae import denormalize_wan_latents, normalize_wan_latents
from comfyui_multitalk.models.sampling.generate import GenerationInputs
from comfyui_multitalk.models.sampling.settings import SamplerSettings

sys.path.insert(0, str(Path(__file__).parent))
from anytalker_helpers import e2e_model  # noqa: E402

TOL = 2e-5


def _diff(a, b) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a.float() - b.float()).abs().max().item()


class StubVae:
    """Encodes to the golden's stored latent; records what it is given and what it decodes."""

    def __init__(self, latent: torch.Tensor):
        self.latent, self.encoded, self.decoded = latent, [], []

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:  # IMAGE [F, H, W, 3] -> raw latent
        self.encoded.append(pixels.clone())
        return denormalize_wan_latents(self.latent[None].clone())

    def decode(self, samples: torch.Tensor) -> torch.Tensor:
        self.decoded.append(normalize_wan_latents(samples.clone()))
        frames = 4 * (samples.shape[2] - 1) + 1
        return torch.zeros(1, frames, samples.shape[3] * 8, samples.shape[4] * 8, 3)


@pytest.fixture(scope="module")
def golden(golden_dir):
    return (json.loads((golden_dir / "anytalker_configs.json").read_text()),
            load_file(str(golden_dir / "anytalker_e2e_cases.safetensors")))


def e2e_inputs(golden):
    """(GenerationInputs, Identities) of the golden run: image at 64 x 96, two faces, golden features."""
    configs, e2e = golden
    faces_seen = []

    def clip(image):  # the stored CLIP outputs of the face crops, in call order (left to right)
        faces_seen.append(image)
        return e2e["inputs.clip_features"][len(faces_seen)].float()

    pixels = image_tensor(e2e["inputs.image_rgb_uint8"].numpy())
    faces = faces_from_detections(configs["e2e"]["detector_boxes_xyxy"], tuple(pixels.shape[1:]), n=2)
    who = identities(pixels, faces, (64, 96), clip)
    reference = resized_image(pixels, (64, 96)).permute(1, 2, 0).add(1).div(2)  # 0..1 scale, unclamped
    inputs = GenerationInputs(positive=e2e["inputs.context"], negative=e2e["inputs.context_null"],
                              reference=reference, clip_features=e2e["inputs.clip_features"][0].float(),
                              audio_features=[e2e[f"audio_feat_{i}"].to(torch.bfloat16) for i in range(2)],
                              masks=who.face_masks)
    return inputs, who


def official_settings(configs, **changes) -> SamplerSettings:
    e2e = configs["e2e"]
    values = dict(steps=e2e["steps"], shift=e2e["shift"], text_scale=e2e["guide_scale"], seed=e2e["seed"],
                  solver="unipc", mode="single", window=e2e["frame_num"], motion_frames=1, colour_strength=0.0)
    return SamplerSettings(**{**values, **changes})


@pytest.mark.parametrize("variant,batched,mode", [("af", True, "single"), ("legacy", False, "single"),
                                                  ("af", False, "multitalk")])
def test_single_mode_is_the_official_generation(golden_dir, golden, variant, batched, mode):
    """(A chained run whose one window covers the clip carries nothing: it is the official run too.)"""
    configs, e2e = golden
    inputs, who = e2e_inputs(golden)
    vae = StubVae(e2e["inputs.vae_latent"])
    settings = official_settings(configs, batch_guidance=batched, mode=mode, motion_frames=5 if mode != "single" else 1)
    generator = AnyTalkerGenerator(e2e_model(golden_dir, variant), vae, inputs, who, settings)
    result = generator.run()
    assert result.frames.shape[0] == configs["e2e"]["frame_num"] == len(generator.plan.windows) * 9
    (encoded,) = vae.encoded  # one window: the reference, then mid-grey (zero in [-1, 1])
    assert _diff(encoded.mul(2).sub(1).permute(3, 0, 1, 2), e2e["vae_input"]) <= TOL
    (decoded,) = vae.decoded
    assert _diff(decoded[0], e2e[f"{variant}.result_latent"]) <= TOL


def test_y_of_one_known_frame_is_the_official_condition(golden):
    configs, e2e = golden
    inputs, who = e2e_inputs(golden)
    generator = AnyTalkerGenerator(torch.nn.Linear(1, 1), StubVae(e2e["inputs.vae_latent"]), inputs, who,
                                   official_settings(configs))
    y, known = generator._condition(inputs.reference[None])
    assert _diff(y[0], e2e["y"]) <= TOL and known.shape[2] == 1


def test_known_frames_are_marked_in_the_mask_channels():
    """Our extension: k carried frames are ones in y's mask channels; the rest shows the face regions."""
    regions = torch.zeros(16, 16)
    regions[4:8, 4:8] = 1.0
    for known in (1, 5, 9):
        mask = dit_mask(regions, (4, 4), 13, known=known)  # [4, T=4, 4, 4]
        pixel = mask.transpose(0, 1).reshape(-1, 4, 4)[3:]  # unfold: frame 0 was repeated 4 times
        assert pixel.shape[0] == 13
        assert torch.equal(pixel[:known], torch.ones(known, 4, 4))
        # the 4x4 face block, bilinear to 4x4 cells: cell (1, 1) lies inside it, cell (3, 3) outside
        assert torch.equal(pixel[known:, 1, 1], torch.ones(13 - known)) and pixel[known:, 3, 3].abs().max() == 0
