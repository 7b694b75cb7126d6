"""Following a queued prompt: websocket messages while it runs, then its history record.

Message facts (ComfyUI execution.py / main.py): "status" {status: {exec_info: {queue_remaining}}},
"execution_start", "execution_cached" {nodes}, "executing" {node}, "progress" {value, max,
node}, "executed" {node, output}, "execution_error" {node_id, node_type, exception_message,
exception_type}, "execution_interrupted" {node_id, node_type}; after the history record is
written the server sends "executing" with node None. Binary frames are previews (ignored).
"""
from __future__ import annotations

import json
import sys
import time
from typing import Callable, Optional

import websocket

from .api import ComfyServer, ExecutionFailed

Log = Callable[[str], None]


def stderr_log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class ProgressPrinter:
    """Turns server messages into short progress lines naming node id and type."""

    def __init__(self, workflow: dict, log: Log):
        self.workflow, self.log = workflow, log
        self.start = time.monotonic()
        self.queue_remaining: Optional[int] = None

    def _name(self, node_id) -> str:
        class_type = self.workflow.get(str(node_id), {}).get("class_type", "?")
        return f"node {node_id} {class_type}"

    def _say(self, text: str) -> None:
        self.log(f"[{time.monotonic() - self.start:7.1f}s] {text}")

    def show(self, kind: str, data: dict) -> None:
        if kind == "status":
            remaining = data.get("status", {}).get("exec_info", {}).get("queue_remaining")
            if remaining is not None and remaining != self.queue_remaining:
                self.queue_remaining = remaining
                self._say(f"queue: {remaining} prompt(s) remaining")
        elif kind == "execution_start":
            self._say("execution started")
        elif kind == "execution_cached" and data.get("nodes"):
            self._say(f"cached: {', '.join(str(n) for n in data['nodes'])}")
        elif kind == "executing" and data.get("node") is not None:
            self._say(f"{self._name(data['node'])}: running")
        elif kind == "progress":
            self._say(f"{self._name(data.get('node'))}: {data.get('value')}/{data.get('max')}")
        elif kind == "executed":
            self._say(f"{self._name(data.get('node'))}: done")


def _failure(kind: str, data: dict) -> ExecutionFailed:
    return ExecutionFailed(data.get("exception_message", ""), node_id=data.get("node_id"),
                           node_type=data.get("node_type"), exception_type=data.get("exception_type", ""),
                           interrupted=kind == "execution_interrupted")


def follow_websocket(ws: websocket.WebSocket, prompt_id: str, deadline: float, printer: ProgressPrinter) -> bool:
    """Print progress until the prompt finishes (True) or the socket closes (False).

    Raises ExecutionFailed on an execution error or interruption, TimeoutError past `deadline`.
    """
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        ws.settimeout(remaining)
        try:
            raw = ws.recv()
        except websocket.WebSocketTimeoutException:
            raise TimeoutError from None
        except (websocket.WebSocketConnectionClosedException, OSError):
            return False
        if not isinstance(raw, str) or not raw:
            continue
        message = json.loads(raw)
        kind, data = message.get("type"), message.get("data") or {}
        if data.get("prompt_id", prompt_id) != prompt_id:
            continue  # another client's prompt
        printer.show(kind, data)
        if kind in ("execution_error", "execution_interrupted"):
            raise _failure(kind, data)
        if kind == "executing" and data.get("node") is None and "prompt_id" in data:
            return True


def wait_for_history(server: ComfyServer, prompt_id: str, deadline: float, poll_s: float = 0.5) -> dict:
    """The prompt's history record, polling until it appears; raises on an error status."""
    while True:
        record = server.history(prompt_id)
        if record is not None:
            break
        if time.monotonic() + poll_s > deadline:
            raise TimeoutError
        time.sleep(poll_s)
    status = record.get("status") or {}
    if status.get("status_str") == "error":
        for kind, data in status.get("messages", []):
            if kind in ("execution_error", "execution_interrupted"):
                raise _failure(kind, data)
        raise ExecutionFailed("the server reports an error without details")
    return record
