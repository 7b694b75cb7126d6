"""Command line: python -m comfyui_multitalk.client --server URL WORKFLOW_API.json [options]."""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from .api import ExecutionFailed, PromptRejected, ServerError
from .run import run_workflow
from .workflow import WorkflowError, load_api_workflow

# Exit codes (documented in docs/headless.md).
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_REJECTED, EXIT_TIMEOUT, EXIT_UNREACHABLE = 0, 1, 2, 3, 4, 5


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m comfyui_multitalk.client",
        description="Run an API-format workflow on a running ComfyUI server: upload the inputs, "
                    "queue it, show progress, download the outputs.")
    parser.add_argument("workflow", help="API-format workflow JSON (ComfyUI: Workflow > Export (API)).")
    parser.add_argument("--server", default="http://127.0.0.1:8188", help="ComfyUI's address (default: %(default)s).")
    parser.add_argument("--image", action="append", default=[], metavar="[NODE=]FILE",
                        help="Image for the LoadImage nodes, in node-id order; NODE=FILE picks a node by id or title.")
    parser.add_argument("--audio", action="append", default=[], metavar="[NODE=]FILE",
                        help="Audio for the LoadAudio nodes, in node-id order (speaker 1 first); NODE=FILE as above.")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="NODE.INPUT=VALUE",
                        help="Change a widget value, e.g. --set 12.steps=20 (NODE: id or title; VALUE parsed as JSON "
                             "when it can be).")
    parser.add_argument("--output-dir", default=".", help="Where the output files go (default: current folder).")
    parser.add_argument("--timeout", type=float, default=3600.0, metavar="S",
                        help="Give up after S seconds, upload to download (default: %(default)s).")
    parser.add_argument("--no-previews", action="store_true",
                        help="Skip temporary preview files (type 'temp'); download saved outputs only.")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        workflow = load_api_workflow(args.workflow)
        result = run_workflow(args.server, workflow, args.image, args.audio, args.overrides, args.output_dir,
                              args.timeout, include_temp=not args.no_previews)
    except (WorkflowError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except PromptRejected as exc:
        print(exc.report(), file=sys.stderr)
        return EXIT_REJECTED
    except ExecutionFailed as exc:
        print(exc.report(), file=sys.stderr)
        return EXIT_FAILED
    except TimeoutError:
        print(f"error: no result within {args.timeout:g} s (the prompt may still be running on the server).",
              file=sys.stderr)
        return EXIT_TIMEOUT
    except ServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except KeyboardInterrupt:
        print("interrupted: asked the server to stop the prompt.", file=sys.stderr)
        return 130
    if not result.files:
        print("warning: the workflow finished but reported no output files.", file=sys.stderr)
    for path in result.files:
        print(path)
    return EXIT_OK
