"""MultiTalk Sampler Options: a tooltip on every input, the options it hands the sampler, and bad
values refused at the node, before any sampling."""
from __future__ import annotations

import pytest

from comfyui_multitalk.models.errors import GenerationInputError
from comfyui_multitalk.models.sampling.step_cache import StepCacheSettings
from comfyui_multitalk.nodes import NODE_CLASS_MAPPINGS
from comfyui_multitalk.nodes.sampler_nodes import MultiTalkSampler
from comfyui_multitalk.nodes.sampler_options import MultiTalkSamplerOptions

DEFAULTS = dict(preset="none", audio_scale_schedule="", cache="off", cache_threshold=-1.0, cache_start_step=-1,
                cache_end_step=-1, magcache_k=2)


def test_inputs_and_socket():
    assert NODE_CLASS_MAPPINGS["MultiTalkSamplerOptions"] is MultiTalkSamplerOptions
    inputs = MultiTalkSamplerOptions.INPUT_TYPES()["required"]
    assert list(inputs) == list(DEFAULTS) and all(spec[1].get("tooltip") for spec in inputs.values())
    assert {name: spec[1]["default"] for name, spec in inputs.items()} == DEFAULTS
    assert MultiTalkSampler.INPUT_TYPES()["optional"]["options"][0] == MultiTalkSamplerOptions.RETURN_TYPES[0]


def test_build():
    out = MultiTalkSamplerOptions().build(**{**DEFAULTS, "preset": "lightx2v_4step", "cache": "teacache",
                                             "cache_threshold": 0.3, "cache_start_step": 1, "magcache_k": 3})
    options = out["result"][0]
    assert options.preset == "lightx2v_4step" and options.audio_schedule is None
    assert options.cache == StepCacheSettings("teacache", 0.3, 1, -1, 3)
    assert out["ui"]["multitalk_notes"] == ["preset: lightx2v_4step", "cache: teacache"]
    assert MultiTalkSamplerOptions().build(**DEFAULTS)["result"][0].cache is None


@pytest.mark.parametrize("change,message", [
    (dict(audio_scale_schedule="4, four"), "has 'four', not a number"),
    (dict(cache="easycache", cache_start_step=5, cache_end_step=5), "end_step 5 is not after start_step 5"),
])
def test_bad_values_stop_at_the_node(change, message):
    with pytest.raises(GenerationInputError, match=message):
        MultiTalkSamplerOptions().build(**{**DEFAULTS, **change})
