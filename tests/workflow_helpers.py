"""Reading the shipped API workflows in tests."""
from __future__ import annotations

import json
from pathlib import Path

from comfyui_multitalk.cli.workflow_files import shipped_api_workflow


def api(name: str) -> dict:
    return json.loads(Path(shipped_api_workflow(name)).read_text(encoding="utf-8"))


def one(prompt: dict, class_type: str) -> tuple[str, dict]:
    """(id, node) of the workflow's only node of that type."""
    (found,) = [(k, n) for k, n in prompt.items() if n["class_type"] == class_type]
    return found
