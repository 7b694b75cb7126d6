"""`python -m comfyui_multitalk {run,demo,workflows}`."""
from __future__ import annotations

import argparse
import sys
from typing import Optional

from ..models.errors import MultiTalkError

EPILOG = """examples:
  python -m comfyui_multitalk demo
  python -m comfyui_multitalk run workflows/multitalk_single_speaker_api.json \\
      --models-dir ~/ComfyUI/models --input-dir ~/ComfyUI/input \\
      --set "Reference image.image=me.png" --set "Speaker 1 voice.audio=me.wav" --output talk.mp4
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m comfyui_multitalk", epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     description="MultiTalk talking videos outside ComfyUI.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run an API-format workflow with the pack's nodes")
    run.add_argument("workflow", help="API-format workflow JSON (e.g. workflows/multitalk_two_speakers_api.json)")
    run.add_argument("--set", dest="assignments", action="append", default=[], metavar="NODE.INPUT=VALUE",
                     help="change an input; NODE is a node id, title or class type (repeatable)")
    run.add_argument("--output", help="write the video here (the preview pictures go beside it)")
    run.add_argument("--input-dir", default=".", help="folder of the image and audio files the workflow names")
    run.add_argument("--models-dir", default="", help="a ComfyUI-style models folder (diffusion_models, vae, ...) "
                     "where the model file names are looked up")
    run.add_argument("--output-dir", default="output", help="folder for outputs when --output is not given")
    demo = commands.add_parser("demo", help="the two-speaker workflow on tiny random weights (no downloads)")
    demo.add_argument("--output", default="multitalk_demo.mp4", help="the video to write")
    demo.add_argument("--keep", action="store_true", help="keep the temporary weights and inputs")
    demo.add_argument("--steps", type=int, default=4, help="sampling steps per window")
    demo.add_argument("--resolution", default="120p", choices=["120p", "240p"], help="draft size")
    files = commands.add_parser("workflows", help="write the shipped workflow files from their descriptions")
    files.add_argument("--check", action="store_true", help="only report files that are out of date")
    return parser


def _run(args) -> None:
    from .native_nodes import RunContext
    from .run import read_workflow, run_workflow

    context = RunContext(input_dir=args.input_dir, output_dir=args.output_dir, output_video=args.output)
    saved = run_workflow(read_workflow(args.workflow), args.assignments, context, models_dir=args.models_dir)
    for path in saved:
        print(f"output: {path}")


def _demo(args) -> None:
    from .demo import DemoSettings, run_demo

    run_demo(args.output, args.keep, DemoSettings(resolution=args.resolution, steps=args.steps))


def _workflows(args) -> int:
    from .workflow_files import WORKFLOWS_DIR, stale_files, write_workflow_files

    if args.check:
        stale = stale_files()
        for name in stale:
            print(f"out of date: {WORKFLOWS_DIR}/{name}")
        return 1 if stale else 0
    for path in write_workflow_files():
        print(f"wrote {path}")
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "run":
            _run(args)
        elif args.command == "demo":
            _demo(args)
        else:
            return _workflows(args)
    except MultiTalkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
    return 0
