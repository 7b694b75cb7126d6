"""Headless client for a running ComfyUI server.

`python -m comfyui_multitalk.client --server URL WORKFLOW_API.json --image ref.png --audio a.wav`
uploads the inputs, queues the API-format workflow, follows progress over the websocket and
downloads every output file. The client's own code needs only `requests` and
`websocket-client`; it never loads a model.
"""
from .api import ComfyServer, ExecutionFailed, PromptRejected, ServerError
from .run import RunResult, run_workflow
from .workflow import WorkflowError, apply_overrides, assign_inputs, load_api_workflow

__all__ = [
    "ComfyServer",
    "ExecutionFailed",
    "PromptRejected",
    "RunResult",
    "ServerError",
    "WorkflowError",
    "apply_overrides",
    "assign_inputs",
    "load_api_workflow",
    "run_workflow",
]
