"""Running an API-format workflow file: load, apply --set, execute, with a clean Ctrl-C."""
from __future__ import annotations

import json
import signal
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator, Optional

from ..models.output_files import note_input, run_scope
from ..nodes import comfy_bridge
from .executor import Executor
from .model_folders import resolve_model_folders
from .native_nodes import RunContext, stand_in_factories
from .output_plan import plan_outputs
from .overrides import apply_overrides
from .registry import NodeRegistry
from .validate import load_prompt
from .values import WorkflowError


def read_workflow(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except OSError as exc:
        raise WorkflowError(f"Cannot read the workflow '{path}': {exc.strerror}.") from exc
    except json.JSONDecodeError as exc:
        raise WorkflowError(f"The workflow '{path}' is not valid JSON ({exc}).") from exc
    note_input(path)
    return load_prompt(data, path)


def run_workflow(prompt: dict, assignments: list[str], context: RunContext,
                 log: Callable[[str], None] = print, models_dir: str = "") -> list[str]:
    """Execute `prompt` with the --set `assignments` (model names looked up in `models_dir`,
    a ComfyUI-style models folder, when given); returns the files written.

    Nothing runs until the workflow validates and every output it will write checks out."""
    registry = NodeRegistry(stand_in_factories(context))
    prompt = apply_overrides(prompt, registry, assignments)
    if models_dir:
        prompt = resolve_model_folders(prompt, models_dir)
    executor = Executor(prompt, registry, log)
    plan_outputs(prompt, executor.validate(), registry, context, log)
    start = time.perf_counter()
    with _interrupt_on_ctrl_c(executor, log):
        executor.run()
    log(f"Finished in {time.perf_counter() - start:.1f} s.")
    return list(context.saved)


def run_workflow_file(path: str, assignments: list[str], context: RunContext, log: Callable[[str], None] = print,
                      models_dir: str = "", overwrite: bool = False) -> list[str]:
    """One command-line run of the workflow file `path`: its own record of the files it reads, and
    `overwrite` (--overwrite) replacing existing outputs instead of numbering new ones."""
    with run_scope(overwrite=overwrite):
        return run_workflow(read_workflow(path), assignments, context, log, models_dir)


@contextmanager
def _interrupt_on_ctrl_c(executor: Executor, log: Callable[[str], None]) -> Iterator[None]:
    """First Ctrl-C: stop at the next sampling step or node. Second: stop at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: Optional[object] = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        if executor.stop_requested:
            raise KeyboardInterrupt
        executor.stop_requested = True
        comfy_bridge.request_interrupt()
        log("Stopping at the next step (Ctrl-C again to stop at once)...")

    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        comfy_bridge.clear_interrupt()
