"""AnyTalker long video (the pack's windowed extension) against the official one pass, on tiny weights.

The nodes run in process on the tiny AnyTalker files of `cli/tiny_weights.py` (random weights, 120p,
the demo's two-person picture and voices): one pass over the whole clip (mode single, the official),
then windows in both long-video modes. Reported per mode: the mean absolute pixel difference to the
one-pass video (0..1 scale), over the first window and after it; the same difference between two
one-pass runs with different seeds (what "different" means for random weights); the mean jump
between consecutive frames at window seams and elsewhere; the sampler's time.

Random weights know nothing about faces: these figures measure the mechanics (what the windows
change, whether seams jump), not lip-sync or identity, which need the released weights on a GPU.

Usage: python benchmarks/bench_anytalker_long.py [--seconds 2.0] [--steps 4] [--window 21] [--motion 5]
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import torch


def _graph(folder: str, seconds: float):
    """Everything up to the sampler, through the pack's nodes; returns the sampler's fixed inputs."""
    from comfyui_multitalk.cli.demo_media import face_boxes, write_demo_media
    from comfyui_multitalk.cli.native_nodes import LoadAudio, LoadImage, RunContext
    from comfyui_multitalk.cli.tiny_weights import write_tiny_weights
    from comfyui_multitalk.nodes.audio_nodes import MultiTalkAudioEncode, MultiTalkWav2VecLoader
    from comfyui_multitalk.nodes.encoder_nodes import (MultiTalkClipVisionEncode, MultiTalkClipVisionLoader,
                                                       MultiTalkTextEncode, MultiTalkTextEncoderLoader,
                                                       MultiTalkVAELoader)
    from comfyui_multitalk.nodes.model_nodes import MultiTalkModelLoader
    from comfyui_multitalk.nodes.speaker_nodes import MultiTalkSpeakers

    weights = write_tiny_weights(os.path.join(folder, "models"))
    media = write_demo_media(os.path.join(folder, "input"), seconds)
    context = RunContext(input_dir=os.path.join(folder, "input"))
    image = LoadImage(context).load_image(media.reference)[0]
    voices = [LoadAudio(context).load(path)[0] for path in media.voices]
    (wav2vec,) = MultiTalkWav2VecLoader().load(weights.anytalker_wav2vec, "fp32")
    audio = MultiTalkAudioEncode().encode(wav2vec, voices[0], "parallel", False, 24.0, "lrope",
                                          audio_2=voices[1])["result"][0]
    boxes = "\n".join(", ".join(f"{v:.0f}" for v in box) for box in face_boxes())
    speakers, _, picture = MultiTalkSpeakers().place(image, 0, "120p", boxes, audio=audio)["result"][:3]
    (t5,) = MultiTalkTextEncoderLoader().load(weights.text_encoder, "", "cpu", "fp32")
    positive, negative = MultiTalkTextEncode().encode(t5, "Two people talk to each other.", "")
    (clip_vision,) = MultiTalkClipVisionLoader().load(weights.clip_vision, "cpu", "fp32")
    (model,) = MultiTalkModelLoader().load(weights.anytalker_dit, "none", "fp32", "auto", "cpu", False)
    (vae,) = MultiTalkVAELoader().load(weights.vae, "cpu", "fp32")
    return dict(model=model, positive=positive, negative=negative, vae=vae,
                clip_vision_output=MultiTalkClipVisionEncode().encode(clip_vision, picture, "none")[0],
                image=picture, audio=audio, speakers=speakers, clip_vision=clip_vision)


def _sample(graph: dict, mode: str, seed: int, steps: int, window: int, motion: int) -> tuple[torch.Tensor, float]:
    from comfyui_multitalk.nodes.sampler_nodes import MultiTalkSampler

    start = time.perf_counter()
    out = MultiTalkSampler().sample(**graph, steps=steps, shift=0.0, text_scale=4.5, audio_scale=4.0, seed=seed,
                                    sampler="unipc", mode=mode, window_frames=window, motion_frames=motion,
                                    color_correction=0.0, max_frames=0, routing="lrope", apg=False)
    return out["result"][0], time.perf_counter() - start


def _jumps(frames: torch.Tensor, seams: list[int]) -> tuple[float, float]:
    """Mean |frame i - frame i-1| at the seams (first new frame of each later window) and elsewhere."""
    steps = (frames[1:] - frames[:-1]).abs().mean(dim=(1, 2, 3))  # steps[i - 1]: into frame i
    at = [steps[s - 1].item() for s in seams if 0 < s < frames.shape[0]]
    rest = [v.item() for i, v in enumerate(steps, start=1) if i not in seams]
    return sum(at) / max(len(at), 1), sum(rest) / max(len(rest), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--window", type=int, default=21)
    parser.add_argument("--motion", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("MULTITALK_QUIET", "1")
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as folder:
        graph = _graph(folder, args.seconds)
        one_pass, one_pass_s = _sample(graph, "single", 0, args.steps, args.window, args.motion)
        other_seed, _ = _sample(graph, "single", 1, args.steps, args.window, args.motion)
        report = {"frames": one_pass.shape[0], "size": list(one_pass.shape[1:3]), "steps": args.steps,
                  "window": args.window, "motion": args.motion, "one_pass_s": round(one_pass_s, 1),
                  "seed_to_seed": round((one_pass - other_seed).abs().mean().item(), 4)}
        stride = args.window - args.motion
        seams = list(range(args.window, one_pass.shape[0], stride))
        for mode in ("infinitetalk", "multitalk"):
            frames, seconds = _sample(graph, mode, 0, args.steps, args.window, args.motion)
            diff = (frames - one_pass).abs().mean(dim=(1, 2, 3))
            at_seams, elsewhere = _jumps(frames, seams)
            report[mode] = {"vs_one_pass": round(diff.mean().item(), 4),
                            "first_window": round(diff[:args.window].mean().item(), 4),
                            "after": round(diff[args.window:].mean().item(), 4),
                            "jump_at_seams": round(at_seams, 4), "jump_elsewhere": round(elsewhere, 4),
                            "seconds": round(seconds, 1)}
        one_at, one_else = _jumps(one_pass, seams)
        report["one_pass_jumps"] = {"at_seam_positions": round(one_at, 4), "elsewhere": round(one_else, 4)}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
