"""Speed options of the DiT, each exact (or a documented approximation) on tiny weights:
block swap against the resident model (a CPU stand-in device map), regional compile against eager
(one compiled block for all, no recompilation from step to step or window to window), guidance
batching, fp8 x fp8 products against their definition, and placement budgets."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from comfyui_multitalk.models.dit.block_swap import BlockSwap
from comfyui_multitalk.models.dit.compile import compile_blocks, is_compiled
from comfyui_multitalk.models.dit.placement import DiTPlacement
from comfyui_multitalk.models.dit.runtime import RuntimeOptions, describe_runtime, with_runtime
from comfyui_multitalk.models.errors import GenerationInputError
from comfyui_multitalk.models.lora.clone import share_clone
from comfyui_multitalk.models.weights.fp8 import Fp8Linear, quantize_fp8

sys.path.insert(0, str(Path(__file__).parent))
from lora_helpers import inputs, tiny_model, tiny_state  # noqa: E402


@pytest.fixture(scope="module")
def model():
    return tiny_model(tiny_state(layers=4))


def _run(model, batch=1, seed=0, **extra):
    args, kwargs = inputs(batch, seed)
    with torch.no_grad():
        return model(*args, **{**kwargs, **extra})


@pytest.mark.parametrize("swapped", [1, 3, 4])
def test_block_swap_gives_the_resident_output(model, swapped):
    resident = _run(model)
    streamed = share_clone(model)
    runner = streamed.block_runner = BlockSwap(streamed.blocks, swapped, torch.device("cpu"))
    at_rest = {id(t) for block in streamed.blocks[4 - swapped:] for t in block.parameters()}
    used = []
    hooks = [block.register_forward_pre_hook(lambda m, a: used.append({id(t) for t in m.parameters()}))
             for block in streamed.blocks]
    out = _run(streamed)
    for hook in hooks:
        hook.remove()
    assert torch.equal(out, resident)
    assert all(not (ids & at_rest) for ids in used[4 - swapped:])  # swapped blocks ran on their copies only
    assert used[0] <= {id(t) for t in model.blocks[0].parameters()} or swapped == 4
    assert {id(t) for b in streamed.blocks[4 - swapped:] for t in b.parameters()} == at_rest  # restored
    assert runner.copies_made == swapped and runner.peak_in_flight <= 2


def test_compiled_blocks_equal_eager_and_compile_once(model):
    graphs = []

    def counting(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    counted = share_clone(model)
    compile_blocks(counted, backend=counting)
    swapped = share_clone(counted)
    swapped.block_runner = BlockSwap(swapped.blocks, 2, torch.device("cpu"))
    for window in range(2):  # two windows (new latents and audio), two steps each (new t), a block-swapped run
        args, kwargs = inputs(2, seed=window)
        for step in range(2):
            t = torch.full((2,), 900.0 - 250 * step)
            with torch.no_grad():
                assert torch.equal(counted(args[0], t, *args[2:], **kwargs, active_speakers=[2, 1]),
                                   model(args[0], t, *args[2:], **kwargs, active_speakers=[2, 1]))
    _run(swapped, 2, active_speakers=[2, 1])
    assert len(graphs) == 1  # one graph for all 4 blocks, every step, every window, swapped or not
    assert not hasattr(model.blocks[0], "_compiled_call_impl") or model.blocks[0]._compiled_call_impl is None


@pytest.mark.slow
def test_inductor_compiled_blocks_match_eager(model):
    compiled = share_clone(model)
    compile_blocks(compiled)  # inductor, as on a GPU
    assert is_compiled(compiled) and not is_compiled(model)
    eager = _run(model, 2, active_speakers=[2, 1])
    assert torch.allclose(_run(compiled, 2, active_speakers=[2, 1]), eager, atol=1e-5, rtol=1e-5)


def test_guidance_batching_policies_agree(model):
    args, kwargs = inputs(3, seed=4)
    contexts = [torch.randn(n, 16) for n in (5, 7, 3)]
    results = {}
    for policy in ("batched", "sequential", "auto"):
        run = share_clone(model)
        run.batch_policy = policy
        with torch.no_grad():
            results[policy] = run(args[0], torch.tensor([700.0, 700.0, 700.0]), contexts, *args[3:],
                                  audio=kwargs["audio"].expand(3, -1, -1, -1, -1, -1),
                                  ref_masks=kwargs["ref_masks"], active_speakers=[2, 2, 1])
    assert torch.allclose(results["sequential"], results["batched"], atol=1e-5)
    assert torch.equal(results["auto"], results["batched"])  # host memory: one batch
    with torch.no_grad():
        single = model(args[0][2:], torch.tensor([700.0]), contexts[2:], *args[3:], audio=kwargs["audio"],
                       ref_masks=kwargs["ref_masks"], active_speakers=[1])
    assert torch.allclose(results["sequential"][2:], single, atol=1e-6)
    bad = share_clone(model)
    bad.batch_policy = "sometimes"
    with pytest.raises(GenerationInputError, match="guidance batching 'sometimes'"):
        _run(bad)


@pytest.mark.parametrize("per_channel", [False, True])
def test_fp8_matmul_is_its_definition(per_channel):
    g = torch.Generator().manual_seed(1)
    layer = Fp8Linear(64, 48, bias=True)
    weight, scale = quantize_fp8(torch.randn(48, 64, generator=g), per_channel=per_channel)
    layer.weight.data, layer.bias.data = weight, torch.randn(48, generator=g).bfloat16()
    layer._buffers["scale_weight"] = scale
    x = torch.randn(2, 5, 64, generator=g).bfloat16()
    w = weight.float() * (scale[:, None] if per_channel else scale)
    exact = layer(x)  # default: dequantised weights
    assert torch.equal(exact, F.linear(x, w.bfloat16(), layer.bias))
    layer.fp8_matmul = True
    x_scale = x.float().abs().max() / 448.0
    xq = (x.float() / x_scale).to(torch.float8_e4m3fn).float() * x_scale  # activations rounded to fp8
    wanted = xq @ w.T + layer.bias.float()
    got = layer(x).float()
    assert got.dtype == torch.float32 and torch.allclose(got, wanted, rtol=1e-2, atol=1e-2)
    assert not torch.equal(layer(x), exact)  # the fp8 path really ran


def test_run_options_leave_the_input_model_alone_and_say_what_runs(model):
    fp8 = tiny_model(tiny_state(layers=4), dtype="fp8_e4m3fn")
    tuned = with_runtime(fp8, RuntimeOptions(guidance_batch="sequential", fp8_matmul=True, attention="sdpa"))
    assert all(m.fp8_matmul for m in tuned.modules() if isinstance(m, Fp8Linear))
    assert not any(m.fp8_matmul for m in fp8.modules() if isinstance(m, Fp8Linear))
    assert tuned.batch_policy == "sequential" and fp8.batch_policy == "auto"
    lines = "\n".join(describe_runtime(tuned))
    assert "attention: sdpa" in lines and "guidance passes: sequential" in lines
    assert "fp8 x fp8 products" in lines and "block swap: 0 of 4" in lines
    with pytest.raises(GenerationInputError, match="guidance batching"):
        with_runtime(model, RuntimeOptions(guidance_batch="both"))


def test_placement_budgets_choose_the_swap_count(model):
    sizes = [sum(t.numel() * t.element_size() for t in b.parameters()) for b in model.blocks]
    total = sum(t.numel() * t.element_size() for t in model.parameters())
    rest, block = total - sum(sizes), max(sizes)
    placement = DiTPlacement(model, torch.device("cuda"), torch.device("cpu"), "auto")
    assert placement.count_for(None) == 0 and placement.count_for(total) == 0
    # one block short: stream it, plus the two in flight at a time
    assert placement.count_for(total - block // 2) == 1 + 2
    assert placement.count_for(rest) == 4  # no room for any block
    assert DiTPlacement(model, torch.device("cuda"), torch.device("cpu"), 2).count_for(rest) == 2  # manual
    assert placement.misplaced()  # everything is on the CPU, the placement wants the GPU
    moved = share_clone(model)
    here = DiTPlacement(moved, torch.device("cpu"), torch.device("cpu"), "auto")
    assert not here.misplaced()
    for layer in (moved.blocks[2].norm_x, moved.head.head):  # a block's tensor, then one outside the blocks
        weight = layer.weight
        layer._parameters["weight"] = torch.nn.Parameter(torch.empty_like(weight, device="meta"))
        assert here.misplaced()  # a model manager moved it away: the next step reloads it
        layer._parameters["weight"] = weight
    with pytest.raises(GenerationInputError, match="Block swap '9'"):
        DiTPlacement(model, torch.device("cuda"), torch.device("cpu"), 9)


def test_cudnn_first_attention_is_exact_where_cudnn_is_absent(model):
    from comfyui_multitalk.models.dit.attention import get_attention

    tuned = share_clone(model)
    tuned.set_attention("sdpa_cudnn")
    assert tuned.attention_name == "sdpa_cudnn" and tuned.attention is get_attention("sdpa_cudnn", "cpu")
    assert torch.allclose(_run(tuned), _run(model), atol=1e-6)  # falls back to PyTorch's kernels on a CPU


def test_block_swap_refuses_to_train(model):
    trained = share_clone(model)
    trained.block_runner = BlockSwap(trained.blocks, 1, torch.device("cpu"))
    trained.blocks[3].norm_x.weight.requires_grad_(True)
    args, kwargs = inputs(1)
    try:
        with pytest.raises(RuntimeError, match="Block swap cannot train"):
            trained(*args, **kwargs)
    finally:
        trained.blocks[3].norm_x.weight.requires_grad_(False)
