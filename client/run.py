"""One headless run: upload inputs, queue, follow, download the outputs."""
from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Sequence

import websocket

from ..models.output_files import numbered_path
from .api import ComfyServer
from .watch import Log, ProgressPrinter, follow_websocket, stderr_log, wait_for_history
from .workflow import apply_overrides, assign_inputs, plan_inputs


@dataclass
class RunResult:
    prompt_id: str
    files: list[str] = field(default_factory=list)  # local paths of the downloaded outputs
    outputs: dict = field(default_factory=dict)  # the history record's outputs, per node id


def output_files(outputs: dict, include_temp: bool = True) -> list[tuple[str, dict]]:
    """(node id, {filename, subfolder, type}) for every file a node reported (images, gifs, audio...)."""
    found = []
    for node_id, node_output in outputs.items():
        for items in node_output.values():
            for item in items if isinstance(items, list) else []:
                if isinstance(item, dict) and "filename" in item and (include_temp or item.get("type") != "temp"):
                    found.append((node_id, item))
    return found


def download_outputs(server: ComfyServer, outputs: dict, output_dir: str, include_temp: bool, log: Log) -> list[str]:
    os.makedirs(output_dir, exist_ok=True)
    paths: list[str] = []
    for node_id, item in output_files(outputs, include_temp):
        name = os.path.basename(item["filename"])
        target = os.path.join(output_dir, name)
        if target in paths:  # two nodes wrote the same name into different subfolders
            target = os.path.join(output_dir, f"{node_id}_{name}")
        if os.path.lexists(target):  # a file already there (an earlier run's, or the user's) is kept
            target = numbered_path(*os.path.splitext(target))
        server.download(item["filename"], item.get("subfolder", ""), item.get("type", "output"), target)
        log(f"saved {target}")
        paths.append(target)
    return paths


def upload_inputs(server: ComfyServer, workflow: dict, images: Sequence[str], audios: Sequence[str], log: Log) -> None:
    """Upload --image/--audio files and point the loader nodes at them (rule: see workflow.py)."""
    plans = {kind: plan_inputs(workflow, kind, list(items)) for kind, items in (("image", images), ("audio", audios))}
    missing = [path for pairs in plans.values() for _, path in pairs if not os.path.isfile(path)]
    if missing:  # check every file before uploading any
        raise FileNotFoundError(f"Input file(s) not found: {', '.join(missing)}")
    for kind, pairs in plans.items():
        names = {}
        for node_id, path in pairs:
            names[node_id] = server.upload(path)
            log(f"uploaded {path} -> node {node_id} {kind}={names[node_id]!r}")
        assign_inputs(workflow, kind, names)


def run_workflow(server_url: str, workflow: dict, images: Sequence[str] = (), audios: Sequence[str] = (),
                 overrides: Sequence[str] = (), output_dir: str = ".", timeout_s: float = 3600.0,
                 include_temp: bool = True, log: Log = stderr_log) -> RunResult:
    """Run an API-format workflow on a ComfyUI server and download what it wrote.

    Raises WorkflowError (bad workflow/arguments), PromptRejected (validation), ExecutionFailed,
    ServerError (unreachable) or TimeoutError.
    """
    deadline = time.monotonic() + timeout_s
    apply_overrides(workflow, list(overrides))
    server = ComfyServer(server_url)
    upload_inputs(server, workflow, images, audios, log)
    client_id = uuid.uuid4().hex
    try:  # connect before queueing so no message is missed
        ws = websocket.create_connection(server.websocket_url(client_id), timeout=30)
    except (OSError, websocket.WebSocketException) as exc:
        log(f"no websocket ({exc}); waiting on /history instead (no progress lines)")
        ws = None
    try:
        prompt_id = server.queue(workflow, client_id)
        log(f"queued prompt {prompt_id}")
        try:
            if ws is not None:
                follow_websocket(ws, prompt_id, deadline, ProgressPrinter(workflow, log))
            record = wait_for_history(server, prompt_id, deadline)
        except KeyboardInterrupt:
            server.interrupt(prompt_id)
            raise
    finally:
        if ws is not None:
            ws.close()
    files = download_outputs(server, record.get("outputs", {}), output_dir, include_temp, log)
    return RunResult(prompt_id, files, record.get("outputs", {}))
