"""ComfyUI's HTTP API as the client uses it: upload, queue, history, view, interrupt.

Server facts (ComfyUI server.py): POST /upload/image takes a multipart field "image" (the
frontend uploads audio files the same way) and answers {"name", "subfolder", "type"}; POST
/prompt takes {"prompt", "client_id"} and answers {"prompt_id", "number", "node_errors"}, or
HTTP 400 with {"error": {...}, "node_errors": {node_id: {"errors": [...], "class_type"}}};
GET /history/{prompt_id} answers {prompt_id: {"outputs", "status"}} once the prompt is done;
GET /view?filename=&subfolder=&type= serves a file.
"""
from __future__ import annotations

import os
from typing import Any, Optional

import requests


class ServerError(RuntimeError):
    """The server could not be reached or answered something unexpected."""


class PromptRejected(ServerError):
    """POST /prompt failed validation (HTTP 400): the server's error and per-node errors."""

    def __init__(self, error: Any, node_errors: dict):
        self.error = error if isinstance(error, dict) else {"message": str(error)}
        self.node_errors = node_errors or {}
        super().__init__(self.error.get("message", "prompt rejected"))

    def report(self) -> str:
        """The server's messages, one block per node, as a person reads them."""
        lines = [f"The server rejected the workflow: {self.error.get('message', '')}".rstrip()]
        if self.error.get("details") and not self.node_errors:
            lines.append(f"  {self.error['details']}")
        for node_id, info in sorted(self.node_errors.items(), key=lambda kv: str(kv[0])):
            lines.append(f"  node {node_id} ({info.get('class_type', '?')}):")
            for err in info.get("errors", []):
                detail = f": {err['details']}" if err.get("details") else ""
                lines.append(f"    - {err.get('message', '')}{detail}")
        return "\n".join(lines)


class ExecutionFailed(ServerError):
    """The prompt ran and a node raised (execution_error) or it was interrupted."""

    def __init__(self, message: str, node_id: Optional[str] = None, node_type: Optional[str] = None,
                 exception_type: str = "", interrupted: bool = False):
        self.node_id, self.node_type = node_id, node_type
        self.exception_type, self.interrupted = exception_type, interrupted
        super().__init__(message)

    def report(self) -> str:
        where = f"node {self.node_id} ({self.node_type})" if self.node_id else "the workflow"
        if self.interrupted:
            return f"Execution was interrupted in {where}."
        kind = f" [{self.exception_type}]" if self.exception_type else ""
        return f"Execution failed in {where}{kind}:\n{str(self).strip()}"


class ComfyServer:
    """A ComfyUI server at `url` (e.g. http://127.0.0.1:8188)."""

    def __init__(self, url: str, request_timeout: float = 60.0):
        self.url = url.rstrip("/")
        self.request_timeout = request_timeout
        self.session = requests.Session()

    def websocket_url(self, client_id: str) -> str:
        scheme, rest = self.url.split("://", 1)
        return f"{'wss' if scheme == 'https' else 'ws'}://{rest}/ws?clientId={client_id}"

    def _call(self, method: str, path: str, **kwargs) -> requests.Response:
        try:
            return self.session.request(method, self.url + path, timeout=self.request_timeout, **kwargs)
        except requests.RequestException as exc:
            raise ServerError(f"Cannot reach ComfyUI at {self.url} ({exc.__class__.__name__}: {exc}). "
                              "Is the server running, and is --server right?") from exc

    def _json(self, response: requests.Response, what: str) -> Any:
        if response.status_code != 200:
            raise ServerError(f"{what}: HTTP {response.status_code} {response.text[:300]}")
        return response.json()

    def upload(self, path: str) -> str:
        """Upload an image or audio file to ComfyUI's input folder; the name a loader widget takes."""
        with open(path, "rb") as handle:
            files = {"image": (os.path.basename(path), handle)}
            answer = self._json(self._call("POST", "/upload/image", files=files, data={"type": "input"}),
                                f"Uploading {path}")
        subfolder = answer.get("subfolder") or ""
        return f"{subfolder}/{answer['name']}" if subfolder else answer["name"]

    def queue(self, prompt: dict, client_id: str) -> str:
        """Queue an API-format workflow; its prompt id, or PromptRejected with the server's errors."""
        response = self._call("POST", "/prompt", json={"prompt": prompt, "client_id": client_id})
        if response.status_code == 400:
            try:
                body = response.json()
            except ValueError:
                body = {"error": {"message": response.text[:300]}}
            raise PromptRejected(body.get("error", {}), body.get("node_errors", {}))
        return self._json(response, "Queueing the workflow")["prompt_id"]

    def history(self, prompt_id: str) -> Optional[dict]:
        """The finished prompt's record ({"outputs", "status"}), or None while it is not done."""
        answer = self._json(self._call("GET", f"/history/{prompt_id}"), "Reading the history")
        return answer.get(prompt_id)

    def download(self, filename: str, subfolder: str, kind: str, target: str) -> None:
        """Stream one file from /view to `target`."""
        params = {"filename": filename, "subfolder": subfolder, "type": kind}
        try:
            with self.session.get(self.url + "/view", params=params, stream=True,
                                  timeout=self.request_timeout) as response:
                if response.status_code != 200:
                    raise ServerError(f"Downloading {filename}: HTTP {response.status_code}")
                with open(target, "wb") as out:
                    for chunk in response.iter_content(1 << 20):
                        out.write(chunk)
        except requests.RequestException as exc:
            raise ServerError(f"Downloading {filename} failed: {exc}") from exc

    def interrupt(self, prompt_id: str) -> None:
        self._call("POST", "/interrupt", json={"prompt_id": prompt_id})
