"""Writing the shipped workflow files from their descriptions, and checking they are current.

workflows/<name>.json: the UI format, listed by ComfyUI's template browser with
workflows/<name>.jpg as its picture. workflows/api/<name>_api.json: the API format for the HTTP
API and the command line, in a subfolder because the template browser lists every .json directly
in workflows/ and cannot open API-format files.
"""
from __future__ import annotations

import json
import os

from .registry import NodeRegistry
from .workflow_graph import Workflow, to_api, to_ui
from .workflow_anytalker import ANYTALKER_WORKFLOWS
from .workflow_dubbing import DUBBING_WORKFLOWS
from .workflow_fast import FAST_WORKFLOWS
from .workflow_library import WORKFLOWS
from .workflow_thumbnail import same_picture, thumbnail_jpeg

WORKFLOWS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "workflows")
API_SUBFOLDER = "api"


def _dump(data: dict) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def api_file_name(name: str) -> str:
    """Path of a workflow's API file inside the workflows folder."""
    return f"{API_SUBFOLDER}/{name}_api.json"


def render(workflow: Workflow, registry: NodeRegistry) -> dict[str, str]:
    """{file name inside workflows/: text} of the UI and API files of one workflow."""
    return {f"{workflow.name}.json": _dump(to_ui(workflow, registry)),
            api_file_name(workflow.name): _dump(to_api(workflow, registry))}


def rendered_files() -> dict[str, str]:
    registry = NodeRegistry()
    files: dict[str, str] = {}
    for describe in WORKFLOWS + FAST_WORKFLOWS + DUBBING_WORKFLOWS + ANYTALKER_WORKFLOWS:
        files.update(render(describe(), registry))
    return files


def _thumbnails(files: dict[str, str]) -> dict[str, dict]:
    """{thumbnail file name: the UI workflow it shows}."""
    return {name[:-len(".json")] + ".jpg": json.loads(text) for name, text in files.items() if "/" not in name}


def stale_files(folder: str = WORKFLOWS_DIR) -> list[str]:
    """Files in `folder` that differ from what the descriptions produce (or are missing)."""
    stale, files = [], rendered_files()
    for name, text in files.items():
        path = os.path.join(folder, name)
        if not os.path.isfile(path) or open(path, encoding="utf-8").read() != text:
            stale.append(name)
    for name, ui in _thumbnails(files).items():
        path = os.path.join(folder, name)
        if not os.path.isfile(path) or not same_picture(open(path, "rb").read(), ui):
            stale.append(name)
    return stale


def write_workflow_files(folder: str = WORKFLOWS_DIR) -> list[str]:
    files, paths = rendered_files(), []
    for name, text in files.items():
        path = os.path.join(folder, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        paths.append(path)
    for name, ui in _thumbnails(files).items():
        path = os.path.join(folder, name)
        with open(path, "wb") as handle:
            handle.write(thumbnail_jpeg(ui))
        paths.append(path)
    return paths


def shipped_api_workflow(name: str) -> str:
    """Path of a shipped API-format workflow, e.g. shipped_api_workflow("multitalk_two_speakers")."""
    return os.path.join(WORKFLOWS_DIR, api_file_name(name))
