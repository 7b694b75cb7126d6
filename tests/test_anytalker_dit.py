"""AnyTalker's DiT against the official numbers (../shared/golden/anytalker_dit_cases, see its README).

Both variants (1.3B audio-face cross-attention, 14B legacy path) on 1, 2 and 3 identities and
the unconditional pass: the output and the intermediate audio tokens, face tokens and flattened
masks, each within 2e-5 in fp32.
"""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from comfyui_multitalk.models.anytalker import flatten_face_masks, load_anytalker
from comfyui_multitalk.models.anytalker.temporal import temporal_token_mask
from comfyui_multitalk.models.errors import GenerationInputError

CASES = {"one_id": 1, "two_ids": 2, "three_ids": 3, "two_ids_uncond": 2}
TOL = 2e-5


@pytest.fixture(scope="module")
def cases(golden_dir):
    return load_file(str(golden_dir / "anytalker_dit_cases.safetensors"))


@pytest.fixture(scope="module")
def models(golden_dir):
    return {variant: load_anytalker(str(golden_dir / f"anytalker_{variant}_tiny_weights.safetensors"), dtype="fp32",
                                    num_heads=2, text_len=16) for variant in ("af", "legacy")}


def _inputs(cases, case):
    n, shared = CASES[case], (lambda key: cases[f"shared.{key}"].float())  # noqa: E731
    uncond = case.endswith("uncond")
    audio = shared("audio")[:n]
    return dict(x=shared("x")[None], t=cases[f"{case}.t"], context=[shared("context_null" if uncond else "context")],
                clip_fea=shared("clip_fea"), y=cases[f"{case}.y"][None],
                audio=torch.zeros_like(audio) if uncond else audio,  # the official null features
                faces=shared("face_clip")[:n, 0], face_masks=cases[f"{case}.face_mask"])


def _diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a.float() - b.float()).abs().max().item()


@pytest.mark.parametrize("variant", ["af", "legacy"])
@pytest.mark.parametrize("case", list(CASES))
def test_output_matches_official(models, cases, variant, case):
    with torch.no_grad():
        out = models[variant](**_inputs(cases, case))
    assert _diff(out[0], cases[f"{variant}.{case}.output"]) <= TOL


@pytest.mark.parametrize("variant", ["af", "legacy"])
@pytest.mark.parametrize("case", list(CASES))
def test_intermediates_match_official(models, cases, variant, case):
    model, inputs = models[variant], _inputs(cases, case)
    with torch.no_grad():
        audio_tokens = model.audio_tokens(inputs["audio"][None], latent_frames=3)  # [1, n, ...]
        face_tokens = model.face_tokens(inputs["faces"])  # [n, 257, dim]
    flat = flatten_face_masks(inputs["face_masks"], (3, 4, 6), batch=1)  # [1, n, 72, 1]
    assert _diff(audio_tokens.transpose(0, 1), cases[f"{variant}.{case}.audio_tokens"]) <= TOL
    assert _diff(face_tokens[:, None], cases[f"{variant}.{case}.face_tokens"]) <= TOL
    assert torch.equal(flat.transpose(0, 1), cases[f"{variant}.{case}.face_mask_flat"])


def test_temporal_mask_matches_official(cases):
    mask = temporal_token_mask((3, 4, 6), audio_frames=9, tokens_per_frame=4)
    assert torch.equal(mask, cases["af.temporal_mask"].bool())


@pytest.mark.parametrize("case", ["two_ids", "three_ids"])
def test_masked_attention_path_matches_official(models, cases, case):
    """The boolean-mask path (used when the audio is not 4(T-1)+1 frames) gives the same numbers."""
    model = models["af"]
    model.grouped_attention = False
    try:
        with torch.no_grad():
            out = model(**_inputs(cases, case))
    finally:
        model.grouped_attention = True
    assert _diff(out[0], cases[f"af.{case}.output"]) <= TOL


@pytest.mark.parametrize("variant", ["af", "legacy"])
def test_cond_and_uncond_batched_equal_separate_calls(models, cases, variant):
    cond, uncond = _inputs(cases, "two_ids"), _inputs(cases, "two_ids_uncond")
    with torch.no_grad():
        batched = models[variant](
            x=cond["x"].expand(2, -1, -1, -1, -1), t=cond["t"].expand(2), context=cond["context"] + uncond["context"],
            clip_fea=cond["clip_fea"], y=cond["y"], audio=torch.stack([cond["audio"], uncond["audio"]]),
            faces=cond["faces"], face_masks=cond["face_masks"])
    assert _diff(batched[0], cases[f"{variant}.two_ids.output"]) <= TOL
    assert _diff(batched[1], cases[f"{variant}.two_ids_uncond.output"]) <= TOL


def test_identity_counts_must_agree(models, cases):
    inputs = _inputs(cases, "two_ids")
    inputs["faces"] = inputs["faces"][:1]
    with pytest.raises(GenerationInputError, match="2 audio tracks, 1 faces and 2 face masks"):
        models["af"](**inputs)


def test_face_masks_must_fit_the_token_grid(models, cases):
    inputs = _inputs(cases, "two_ids")
    inputs["face_masks"] = inputs["face_masks"][:, :, :3]
    with pytest.raises(GenerationInputError, match=r"do not fit the token grid \(T, H/2, W/2\) = \(3, 4, 6\)"):
        models["legacy"](**inputs)


def test_legacy_audio_must_cover_the_latent_frames(models, cases):
    inputs = _inputs(cases, "one_id")
    inputs["audio"] = inputs["audio"][:, :5]
    with pytest.raises(GenerationInputError, match="covers 5 video frames; the 14B model needs 9"):
        models["legacy"](**inputs)


def test_audio_from_another_wav2vec_is_refused(models, cases):
    inputs = _inputs(cases, "one_id")
    inputs["audio"] = inputs["audio"][..., :3, :32]
    with pytest.raises(GenerationInputError, match=r"layers x C = 9216"):
        models["af"](**inputs)


def test_audio_without_faces_is_refused(models, cases):
    inputs = _inputs(cases, "one_id")
    inputs["faces"] = None
    with pytest.raises(GenerationInputError, match="audio, faces and face_masks together"):
        models["af"](**inputs)


@pytest.mark.parametrize("variant", ["af", "legacy"])
def test_bf16_weights_run_close_to_fp32(golden_dir, cases, variant):
    model = load_anytalker(str(golden_dir / f"anytalker_{variant}_tiny_weights.safetensors"), dtype="bf16",
                           num_heads=2, text_len=16)
    with torch.no_grad():
        out = model(**_inputs(cases, "three_ids"))
    assert out.dtype == torch.float32
    assert _diff(out[0], cases[f"{variant}.three_ids.output"]) <= 0.05  # bf16 rounding, outputs ~2 in size


@pytest.mark.parametrize("variant", ["af", "legacy"])
def test_batch_items_keep_their_own_faces_and_audio(models, cases, variant):
    """Two items with different faces, audio and masks in one batch equal the two separate calls."""
    first, second = _inputs(cases, "two_ids"), _inputs(cases, "three_ids")
    second = {**second, "faces": second["faces"][1:], "audio": second["audio"][1:],
              "face_masks": second["face_masks"][1:], "t": first["t"]}
    with torch.no_grad():
        separate = [models[variant](**first)[0], models[variant](**second)[0]]
        batched = models[variant](
            x=first["x"].expand(2, -1, -1, -1, -1), t=first["t"].expand(2), context=first["context"] * 2,
            clip_fea=first["clip_fea"], y=torch.cat([first["y"], second["y"]]),
            audio=torch.stack([first["audio"], second["audio"]]), faces=torch.stack([first["faces"], second["faces"]]),
            face_masks=torch.stack([first["face_masks"], second["face_masks"]]))
    assert _diff(batched[0], separate[0]) <= 1e-5 and _diff(batched[1], separate[1]) <= 1e-5
