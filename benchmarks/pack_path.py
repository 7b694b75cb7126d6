"""Makes `comfyui_multitalk` import from this checkout: the device machine runs a bare copy of the
tree (no installed package), and an installed package here may point at another checkout.
Import it first: `import pack_path  # noqa: F401` from a script in benchmarks/."""
from __future__ import annotations

import importlib.util
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def import_pack() -> None:
    spec = importlib.util.find_spec("comfyui_multitalk")
    if spec is None or spec.origin is None or Path(spec.origin).resolve().parent != REPO:
        folder = Path(tempfile.mkdtemp(prefix="multitalk_pkg_"))
        (folder / "comfyui_multitalk").symlink_to(REPO, target_is_directory=True)
        sys.path.insert(0, str(folder))
    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:
        sys.path.insert(0, here)


import_pack()
