"""`python -m comfyui_multitalk {run,demo,workflows}`."""
from __future__ import annotations

import argparse
import sys
import traceback
from typing import Optional

from ..models.errors import MultiTalkError

ISSUES_URL = "https://github.com/comfyui-multitalk/ComfyUI-MultiTalk/issues"

EPILOG = """examples:
  python -m comfyui_multitalk demo
  python -m comfyui_multitalk run workflows/api/multitalk_single_speaker_api.json \\
      --models-dir ~/ComfyUI/models --input-dir ~/ComfyUI/input \\
      --set "Reference image.image=me.png" --set "Speaker 1 voice.audio=me.wav" --output talk.mp4
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m comfyui_multitalk", epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     description="MultiTalk talking videos outside ComfyUI.")
    parser.add_argument("--debug", action="store_true", help="show the full traceback when something fails")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run an API-format workflow with the pack's nodes")
    run.add_argument("workflow", help="API-format workflow JSON (e.g. workflows/api/multitalk_two_speakers_api.json)")
    run.add_argument("--set", dest="assignments", action="append", default=[], metavar="NODE.INPUT=VALUE",
                     help="change an input; NODE is a node id, title or class type (repeatable)")
    run.add_argument("--output", help="write the video here (the preview pictures go beside it)")
    run.add_argument("--input-dir", default=".", help="folder of the image and audio files the workflow names")
    run.add_argument("--models-dir", default="", help="a ComfyUI-style models folder (diffusion_models, vae, ...) "
                     "where the model file names are looked up")
    run.add_argument("--output-dir", default="output", help="folder for outputs when --output is not given")
    run.add_argument("--overwrite", action="store_true", help="replace existing output files (default: a new "
                     "numbered name, e.g. talk_00001_.mp4)")
    demo = commands.add_parser("demo", help="the two-speaker workflow on tiny random weights (no downloads)")
    demo.add_argument("--output", default="multitalk_demo.mp4", help="the video to write")
    demo.add_argument("--overwrite", action="store_true", help="replace an existing video (default: a new "
                      "numbered name)")
    demo.add_argument("--keep", action="store_true", help="keep the temporary weights and inputs")
    demo.add_argument("--steps", type=int, default=4, help="sampling steps per window")
    demo.add_argument("--resolution", default="120p", choices=["120p", "240p"], help="draft size")
    demo.add_argument("--family", default="multitalk", choices=["multitalk", "anytalker"],
                      help="which model family's two-speaker workflow to run (tiny weights of that family)")
    files = commands.add_parser("workflows", help="write the shipped workflow files from their descriptions")
    files.add_argument("--check", action="store_true", help="only report files that are out of date")
    from .train import add_train_parser

    train = add_train_parser(commands)
    for command in (run, demo, files, train):  # also accepted after the command; the top-level value otherwise
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def _run(args) -> None:
    from .native_nodes import RunContext
    from .run import run_workflow_file

    context = RunContext(input_dir=args.input_dir, output_dir=args.output_dir, output_video=args.output)
    saved = run_workflow_file(args.workflow, args.assignments, context, models_dir=args.models_dir,
                              overwrite=args.overwrite)
    for path in saved:
        print(f"output: {path}")


def _demo(args) -> None:
    from .demo import DemoSettings, run_demo

    run_demo(args.output, args.keep, DemoSettings(resolution=args.resolution, steps=args.steps, family=args.family),
             overwrite=args.overwrite)


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
    """Run the command; every failure becomes a short message on stderr and a non-zero exit code
    (1, or 130 for Ctrl-C), with the traceback only under --debug."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "run":
            _run(args)
        elif args.command == "demo":
            _demo(args)
        elif args.command == "train":
            from .train import run_train

            run_train(args)
        else:
            return _workflows(args)
    except KeyboardInterrupt:
        return _fail(args, "Interrupted.", code=130)
    except MultiTalkError as exc:
        return _fail(args, f"error: {exc}")
    except OSError as exc:
        return _fail(args, f"error: {_os_message(exc)}")
    except Exception as exc:  # a bug: say so, briefly, and how to report it
        return _fail(args, _unexpected(exc))
    return 0


def _fail(args: argparse.Namespace, message: str, code: int = 1) -> int:
    if getattr(args, "debug", False):
        traceback.print_exc()
    print(message, file=sys.stderr)
    return code


def _os_message(exc: OSError) -> str:
    where = f" '{exc.filename}'" if exc.filename else ""
    return (f"{exc.strerror or exc}{where}. Check the path, the free disk space and the permissions, then run "
            "again.")


def _unexpected(exc: Exception) -> str:
    first_line = (str(exc).strip().splitlines() or [""])[0][:300]
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return (f"error: out of memory ({first_line or type(exc).__name__}). Use a smaller resolution or window, "
                "an fp8 model, or a machine with more memory.")
    return (f"error: unexpected {type(exc).__name__}: {first_line}\nThis is a bug in ComfyUI-MultiTalk: run again "
            f"with --debug and report the traceback at {ISSUES_URL}")
