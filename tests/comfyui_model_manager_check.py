"""Run inside ComfyUI's environment by tests/test_comfyui_model_manager.py:

    python tests/comfyui_model_manager_check.py COMFYUI_DIR

Loads a tiny MultiTalk DiT through the pack's bridge on a CPU-only ComfyUI and prints one
`check: value` line per fact: ComfyUI's model manager lists the DiT, unloads it when asked (as
when another workflow needs the device), the next run loads it again, and the pack's encoders ask
ComfyUI to free memory before they move onto a GPU.
"""
import sys


def main(comfy_dir: str) -> None:
    sys.argv = ["main.py", "--cpu"]
    sys.path.insert(0, comfy_dir)
    import comfy.options

    comfy.options.enable_args_parsing()
    import comfy.model_management as mm
    import torch

    from comfyui_multitalk.models import load_dit
    from comfyui_multitalk.models.dit.tiny import random_dit_state_dict, tiny_dit_config
    from comfyui_multitalk.models.encoders.devices import request_memory
    from comfyui_multitalk.nodes import comfy_bridge
    from comfyui_multitalk.nodes.model_nodes import MultiTalkModel

    model = load_dit(random_dit_state_dict(tiny_dit_config(), seed=1), num_heads=2, text_len=16)
    handle = MultiTalkModel(model, mm.get_torch_device(), False, "tiny", base=model)
    handle.to_device(tokens=72, batch=1)
    patcher = handle._comfy_patcher
    listed = lambda: patcher in [m.model for m in mm.current_loaded_models]  # noqa: E731
    print(f"registered: {listed()}")
    print(f"sizes: {patcher.loaded_size() == patcher.model_size() > 0}")
    calls = []
    original = handle._placement.unload
    handle._placement.unload = lambda: (calls.append("unload"), original())[1]
    mm.unload_all_models()
    print(f"unloaded: {calls == ['unload'] and not listed()}")
    handle.to_device(tokens=72, batch=1)
    print(f"reloaded: {listed()}")
    freed = []
    mm.free_memory = lambda nbytes, device, keep_loaded=[]: freed.append((nbytes, str(device)))
    comfy_bridge.install_memory_requests()
    request_memory(1000, torch.device("cuda", 0))
    print(f"encoder request: {freed == [(1000, 'cuda:0')]}")


if __name__ == "__main__":
    main(sys.argv[1])
