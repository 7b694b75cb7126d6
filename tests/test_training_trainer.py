"""Training the audio adapter: the loss falls, only the audio keys change, the file loads strictly,
resume and seeds reproduce losses exactly, and the node runs under inference mode."""
from __future__ import annotations

import os

import pytest
import torch
from safetensors import safe_open

from comfyui_multitalk.models import load_dit
from comfyui_multitalk.models.dit.keys import is_audio_key
from comfyui_multitalk.models.dit.tiny import save_tiny_dit, tiny_dit_config
from comfyui_multitalk.models.errors import DatasetInputError, GenerationInputError
from comfyui_multitalk.models.training import (AdapterTrainer, TrainHooks, TrainSettings, TrainableAdapter,
                                               checkpointed_blocks, check_model_fits, draw_flow, flow_matching_loss,
                                               load_cache)
from comfyui_multitalk.models.training.batches import BatchPlanner
from comfyui_multitalk.models.training.checkpoints import load_resume_state
from comfyui_multitalk.models.training.tiny import tiny_training_dit_config, write_synthetic_cache
from comfyui_multitalk.nodes.model_nodes import MultiTalkModel
from comfyui_multitalk.nodes.training_nodes import MultiTalkTrainAudioAdapter

FAST = dict(learning_rate=3e-3, warmup_steps=3, save_every=0, gradient_checkpointing=False)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    base, audio = save_tiny_dit(str(root), tiny_training_dit_config(), seed=1)
    cache = load_cache(write_synthetic_cache(str(root / "cache"), windows=4, frames=9, latent_size=(4, 4)))
    return {"root": root, "base": base, "audio": audio, "cache": cache}


def _model(files):
    return load_dit([files["base"], files["audio"]])


def _eval_loss(model, cache, seed=123, batches=6):
    """Flow-matching loss on fixed batches, noise and timesteps (no training randomness)."""
    g = torch.Generator().manual_seed(seed)
    planner = BatchPlanner(cache, 2, 0.0, 0.0, model.config.text_len, g)
    with torch.no_grad():
        total = 0.0
        for _ in range(batches):
            batch = planner.next_batch()
            total += float(flow_matching_loss(model, batch, draw_flow(batch.latents.shape, g, 5.0), False))
        return total


def test_training_lowers_the_loss_and_changes_only_the_audio_keys(files, tmp_path):
    model = _model(files)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    settings = TrainSettings(steps=40, seed=1, batch_size=2, **{**FAST, "learning_rate": 1e-2})
    result = AdapterTrainer(model, files["cache"], settings, str(tmp_path / "adapter")).run()
    losses = result.losses
    assert len(losses) == 40 and result.start_step == 0
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < 0.92 * first, (first, last)  # about 0.86 here; the steps' random t and noise scatter it
    after = model.state_dict()  # the model got its own audio layers back: nothing changed
    assert all(torch.equal(before[k], after[k]) for k in before)

    with safe_open(result.adapter_path, framework="pt") as handle:
        saved_keys = set(handle.keys())
    assert saved_keys == {k for k in before if is_audio_key(k)}
    trained = load_dit([files["base"], result.adapter_path])  # strict: every key present, none extra
    master = load_resume_state(result.resume_path)["params"]
    for key, value in trained.state_dict().items():
        if is_audio_key(key):
            assert torch.equal(value, master[key].to(torch.bfloat16).float()), key
        else:
            assert torch.equal(value, before[key]), key
    # On fixed batches, noise and timesteps the trained adapter is clearly better (about 0.75x).
    assert _eval_loss(trained, files["cache"]) < 0.85 * _eval_loss(model, files["cache"])


def test_resume_after_an_interrupt_and_seeds_reproduce_losses(files, tmp_path):
    settings = TrainSettings(steps=4, seed=7, grad_accumulation=2, zero_audio_share=0.3, compose_share=0.5, **FAST)
    straight = AdapterTrainer(_model(files), files["cache"], settings, str(tmp_path / "a")).run().losses
    again = AdapterTrainer(_model(files), files["cache"], settings, str(tmp_path / "b")).run().losses
    assert again == straight

    calls = []

    def interrupt_at_step_3():
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt("cancelled")

    with pytest.raises(KeyboardInterrupt):
        AdapterTrainer(_model(files), files["cache"], settings, str(tmp_path / "c"),
                       TrainHooks(check_interrupt=interrupt_at_step_3)).run()
    assert load_resume_state(str(tmp_path / "c.resume.pt"))["step"] == 2
    resumed = AdapterTrainer(_model(files), files["cache"], settings, str(tmp_path / "c")).run()
    assert resumed.start_step == 2 and resumed.losses == straight

    other_seed = TrainSettings(**{**settings.__dict__, "seed": 8, "steps": 1})
    assert AdapterTrainer(_model(files), files["cache"], other_seed, str(tmp_path / "d")).run().losses[0] != straight[0]


def test_gradient_checkpointing_gives_the_same_gradients(files):
    model = _model(files)
    grads = []
    for enabled in (False, True):
        g = torch.Generator().manual_seed(5)
        batch = BatchPlanner(files["cache"], 2, 0.0, 0.0, 32, g).next_batch()
        with TrainableAdapter(model) as adapter, checkpointed_blocks(model, enabled):
            flow_matching_loss(model, batch, draw_flow(batch.latents.shape, g, 5.0), False).backward()
            grads.append({k: p.grad.clone() for k, p in adapter.named_parameters()})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 0
    for key in grads[0]:
        torch.testing.assert_close(grads[1][key], grads[0][key], rtol=1e-5, atol=1e-7)


def test_composed_and_zero_audio_batches(files):
    g = torch.Generator().manual_seed(0)
    batch = BatchPlanner(files["cache"], 2, 0.0, 1.0, 32, g).next_batch()
    assert batch.latents.shape == (2, 16, 3, 4, 8) and batch.y.shape == (2, 20, 3, 4, 8)
    assert batch.audio.shape == (2, 2, 9, 5, 2, 64) and batch.active == [2, 2]
    assert batch.masks[0, 0, :, :4].eq(1).all() and batch.masks[0, 1, :, 4:].eq(1).all()
    assert batch.masks[0, 0, :, 4:].eq(0).all() and batch.masks[0, 2].eq(0).all()
    silent = BatchPlanner(files["cache"], 3, 1.0, 0.0, 32, g).next_batch()
    assert silent.active == [1, 1, 1] and silent.audio.eq(0).all()


def test_model_that_does_not_fit_the_cache_is_named(files, tmp_path):
    with pytest.raises(DatasetInputError, match=r"text embedding width: cache 32, model 16"):
        check_model_fits(files["cache"], tiny_dit_config())
    with pytest.raises(GenerationInputError, match="steps must be >= 1"):
        AdapterTrainer(_model(files), files["cache"], TrainSettings(steps=0), str(tmp_path / "x"))
    with pytest.raises(DatasetInputError, match="no manifest.json|not a training cache"):
        load_cache(str(tmp_path))


def test_node_trains_under_inference_mode_and_leaves_the_model_as_it_was(files, tmp_path):
    with torch.inference_mode():
        dit = _model(files)
    assert dit.blocks[0].audio_cross_attn.q_linear.weight.is_inference()
    before = {k: v.clone() for k, v in dit.state_dict().items()}
    wrapped = MultiTalkModel(dit, torch.device("cpu"), False, "tiny")
    node = MultiTalkTrainAudioAdapter()
    inputs = node.INPUT_TYPES()
    assert all("tooltip" in spec[1] for group in inputs.values() for spec in group.values())
    with torch.inference_mode():
        path, curve, report = node.train(
            wrapped, files["cache"].folder, str(tmp_path / "node_adapter"), steps=3, learning_rate=1e-3,
            warmup_steps=1, batch_size=1, grad_accumulation=1, zero_audio_share=0.1, compose_two_speakers=0.0,
            shift=5.0, seed=0, gradient_checkpointing=True, autocast="bf16", save_every=2, save_dtype="fp32",
            resume=True, audio_layers="fresh")
    assert path == str(tmp_path / "node_adapter.safetensors") and "Trained steps 1..3 of 3" in report
    assert (tmp_path / "node_adapter_step000002.safetensors").is_file()
    assert curve.shape == (1, 360, 640, 3) and float(curve.min()) < 0.5
    assert all(torch.equal(before[k], v) for k, v in dit.state_dict().items())
    load_dit([files["base"], path])


def _train_node(model, cache_folder: str, output_name: str, steps: int, resume: bool = True):
    return MultiTalkTrainAudioAdapter().train(
        model, cache_folder, output_name, steps=steps, learning_rate=1e-3, warmup_steps=1, batch_size=1,
        grad_accumulation=1, zero_audio_share=0.0, compose_two_speakers=0.0, shift=5.0, seed=0,
        gradient_checkpointing=False, autocast="off", save_every=0, save_dtype="fp32", resume=resume,
        audio_layers="continue")


def test_checkpoints_never_overwrite_what_training_reads(files):
    from comfyui_multitalk.models.errors import OutputPathError
    from comfyui_multitalk.models.output_files import run_scope
    from comfyui_multitalk.nodes.model_nodes import MultiTalkModelLoader

    window = files["cache"].windows[0].path
    given = {path: open(path, "rb").read() for path in (window, files["base"], files["audio"])}
    settings = TrainSettings(steps=2, seed=0, **FAST)
    with pytest.raises(OutputPathError, match=f"The output '{window}' is the file '{window}'"):
        AdapterTrainer(_model(files), files["cache"], settings, window[: -len(".safetensors")]).run()
    with run_scope():
        (model,) = MultiTalkModelLoader().load(files["base"], files["audio"], "auto", "auto", "cpu", False)
        for read in (files["audio"], files["base"]):  # the audio file it starts from, the base model
            with pytest.raises(OutputPathError, match=f"'{read}' is the file '{read}', which this run reads"):
                _train_node(model, files["cache"].folder, read[: -len(".safetensors")], steps=1)
    assert all(open(path, "rb").read() == data for path, data in given.items())
    assert not os.path.exists(window[: -len(".safetensors")] + ".resume.pt")


def test_a_resumed_run_saves_over_its_own_adapter_even_when_it_was_loaded(files, tmp_path):
    from comfyui_multitalk.models.output_files import run_scope
    from comfyui_multitalk.nodes.model_nodes import MultiTalkModelLoader

    output = str(tmp_path / "mine")
    with run_scope():
        (model,) = MultiTalkModelLoader().load(files["base"], files["audio"], "auto", "auto", "cpu", False)
        path, _, _ = _train_node(model, files["cache"].folder, output, steps=1)
        first = open(path, "rb").read()
        # Load the adapter just written (recorded as read), then continue the same run.
        (model,) = MultiTalkModelLoader().load(files["base"], path, "auto", "auto", "cpu", False)
        again, _, report = _train_node(model, files["cache"].folder, output, steps=2)
    assert again == path and "Trained steps 2..2 of 2" in report and open(path, "rb").read() != first
