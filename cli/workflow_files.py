"""Writing the shipped workflow files from their descriptions, and checking they are current."""
from __future__ import annotations

import json
import os

from .registry import NodeRegistry
from .workflow_graph import Workflow, to_api, to_ui
from .workflow_anytalker import ANYTALKER_WORKFLOWS
from .workflow_dubbing import DUBBING_WORKFLOWS
from .workflow_library import WORKFLOWS

WORKFLOWS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "workflows")


def _dump(data: dict) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def render(workflow: Workflow, registry: NodeRegistry) -> dict[str, str]:
    """{file name: text} of the UI and API files of one workflow."""
    return {f"{workflow.name}.json": _dump(to_ui(workflow, registry)),
            f"{workflow.name}_api.json": _dump(to_api(workflow, registry))}


def rendered_files() -> dict[str, str]:
    registry = NodeRegistry()
    files: dict[str, str] = {}
    for describe in WORKFLOWS + DUBBING_WORKFLOWS + ANYTALKER_WORKFLOWS:
        files.update(render(describe(), registry))
    return files


def stale_files(folder: str = WORKFLOWS_DIR) -> list[str]:
    """Files in `folder` that differ from what the descriptions produce (or are missing)."""
    stale = []
    for name, text in rendered_files().items():
        path = os.path.join(folder, name)
        if not os.path.isfile(path) or open(path, encoding="utf-8").read() != text:
            stale.append(name)
    return stale


def write_workflow_files(folder: str = WORKFLOWS_DIR) -> list[str]:
    os.makedirs(folder, exist_ok=True)
    paths = []
    for name, text in rendered_files().items():
        path = os.path.join(folder, name)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        paths.append(path)
    return paths


def shipped_api_workflow(name: str) -> str:
    """Path of a shipped API-format workflow, e.g. shipped_api_workflow("multitalk_two_speakers")."""
    return os.path.join(WORKFLOWS_DIR, f"{name}_api.json")
