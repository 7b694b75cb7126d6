"""The pack as ComfyUI and pip see it: importable under any folder name, every node following
the V1 contract (tooltips, description, category, id prefix), every subpackage installed."""
from __future__ import annotations

import importlib.util
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _load_as(folder_name: str, tmp_path: Path) -> tuple[set, str, bool]:
    """Import the checkout the way ComfyUI imports custom_nodes/<folder_name> and read what
    ComfyUI reads: (node ids, WEB_DIRECTORY, whether a V3 entry point exists)."""
    link = tmp_path / folder_name
    link.symlink_to(REPO, target_is_directory=True)
    spec = importlib.util.spec_from_file_location(folder_name, link / "__init__.py",
                                                  submodule_search_locations=[str(link)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[folder_name] = module
    try:
        spec.loader.exec_module(module)
        return set(module.NODE_CLASS_MAPPINGS), module.WEB_DIRECTORY, hasattr(module, "comfy_entrypoint")
    finally:
        for name in [n for n in sys.modules if n == folder_name or n.startswith(folder_name + ".")]:
            del sys.modules[name]


@pytest.mark.parametrize("folder", ["ComfyUI-MultiTalk", "multitalk_nodes_2"])
def test_importable_under_any_folder_name(tmp_path, folder):
    import comfyui_multitalk

    node_ids, web_directory, has_v3_entry = _load_as(folder, tmp_path)
    assert node_ids == set(comfyui_multitalk.NODE_CLASS_MAPPINGS)
    assert web_directory == "./web"
    assert not has_v3_entry  # V1 mappings only


def _nodes():
    import comfyui_multitalk

    return sorted(comfyui_multitalk.NODE_CLASS_MAPPINGS.items())


@pytest.mark.parametrize("node_id,cls", _nodes())
def test_node_contract(node_id, cls):
    import comfyui_multitalk

    assert node_id.startswith("MultiTalk")
    assert cls.CATEGORY.startswith("MultiTalk/")
    assert cls.DESCRIPTION.strip() and callable(getattr(cls, cls.FUNCTION))
    assert len(cls.OUTPUT_TOOLTIPS) == len(cls.RETURN_TYPES)
    assert node_id in comfyui_multitalk.NODE_DISPLAY_NAME_MAPPINGS
    spec = cls.INPUT_TYPES()
    for section in ("required", "optional"):
        for name, entry in spec.get(section, {}).items():
            options = entry[1] if len(entry) > 1 else {}
            assert options.get("tooltip"), f"{node_id}.{name} has no tooltip"


def test_pyproject_installs_every_subpackage_and_no_torch():
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    listed = set(meta["tool"]["setuptools"]["packages"])
    on_disk = {"comfyui_multitalk" + ("." + ".".join(p.parent.relative_to(REPO).parts) if p.parent != REPO else "")
               for p in REPO.rglob("__init__.py")
               if not {"tests", "build", ".git"} & set(p.relative_to(REPO).parts)}
    assert on_disk <= listed, f"not installed by pip: {sorted(on_disk - listed)}"
    assert meta["tool"]["comfy"]["PublisherId"] and meta["tool"]["comfy"]["DisplayName"]
    deps = meta["project"]["dependencies"] + (REPO / "requirements.txt").read_text().split()
    assert not [d for d in deps if d.split("=")[0].split(">")[0].split("<")[0].strip() in ("torch", "torchvision")]


def test_package_data_ships_the_frontend_and_every_workflow_file():
    import fnmatch

    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = meta["tool"]["setuptools"]["package-data"]["comfyui_multitalk"]
    files = [p.relative_to(REPO).as_posix() for folder in ("web", "workflows") for p in (REPO / folder).rglob("*")
             if p.is_file()]
    shipped = lambda f: any(fnmatch.fnmatch(f, p) and f.count("/") == p.count("/") for p in patterns)  # noqa: E731
    assert files and [f for f in files if not shipped(f)] == []
