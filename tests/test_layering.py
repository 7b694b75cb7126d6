"""The layering rules of DESIGN §1, read from the source files themselves."""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMFY_MODULES = {"comfy", "comfy_api", "comfy_extras", "folder_paths", "server",
                 "latent_preview", "node_helpers", "nodes", "execution", "comfy_execution"}


def _imported_top_modules(path: Path) -> set[tuple[str, int]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {(alias.name.split(".")[0], node.lineno) for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add((node.module.split(".")[0], node.lineno))
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module":
            if node.args and isinstance(node.args[0], ast.Constant):
                found.add((str(node.args[0].value).split(".")[0], node.lineno))
    return found


def test_models_never_import_comfyui():
    offenders = []
    for path in sorted((REPO / "models").rglob("*.py")):
        for module, line in _imported_top_modules(path):
            if module in COMFY_MODULES:
                offenders.append(f"{path.relative_to(REPO)}:{line} imports {module}")
    assert not offenders, "models/ must stay pure torch:\n" + "\n".join(offenders)


def test_pack_uses_relative_imports_for_itself():
    offenders = []
    for path in sorted(list((REPO / "models").rglob("*.py")) + list((REPO / "nodes").rglob("*.py"))):
        for module, line in _imported_top_modules(path):
            if module == "comfyui_multitalk":
                offenders.append(f"{path.relative_to(REPO)}:{line}")
    assert not offenders, "use relative imports inside the pack:\n" + "\n".join(offenders)


def test_layering_checker_sees_a_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import folder_paths\nfrom comfy.utils import ProgressBar\n")
    assert {m for m, _ in _imported_top_modules(bad)} == {"folder_paths", "comfy"}
