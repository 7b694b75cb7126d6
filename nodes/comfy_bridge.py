"""The one place where the pack touches ComfyUI's own facilities.

Inside ComfyUI this uses folder_paths, ProgressBar, model_management and the interrupt
check; outside (command line, tests) it falls back to plain paths, a printed progress line
and torch's own device choice. ComfyUI modules are imported lazily, so importing the pack
has no side effects and works without ComfyUI installed.
"""
from __future__ import annotations

import importlib
import os
import sys
import threading
from typing import Callable, Optional

import torch

from ..models.errors import CheckpointError, SpeakerInputError
from ..models.output_files import check_output, note_input

# Folders the pack reads besides ComfyUI's standard ones, with their file extensions.
EXTRA_MODEL_FOLDERS = {
    "audio_encoders": {".safetensors", ".bin", ".pt", ".pth"},
    "model_patches": {".safetensors", ".pt", ".pth", ".gguf"},
}
# File types ComfyUI's own folders do not list but the pack reads (city96's and kijai's GGUF files).
EXTRA_EXTENSIONS = {"diffusion_models": {".gguf"}, "model_patches": {".gguf"}}

_interrupt_flag = threading.Event()


def _comfy_module(name: str):
    """Import a ComfyUI module if ComfyUI is running, else return None."""
    if "comfy" not in sys.modules and "folder_paths" not in sys.modules:
        return None
    try:
        return importlib.import_module(name)
    except Exception:  # ComfyUI absent or half-initialised: behave as outside ComfyUI
        return None


def in_comfyui() -> bool:
    return _comfy_module("folder_paths") is not None


def register_extra_folders() -> None:
    """Make sure ComfyUI knows the folders the pack reads (called once at node import)."""
    folder_paths = _comfy_module("folder_paths")
    if folder_paths is None:
        return
    for name, exts in EXTRA_MODEL_FOLDERS.items():
        if name not in folder_paths.folder_names_and_paths:
            path = os.path.join(folder_paths.models_dir, name)
            folder_paths.folder_names_and_paths[name] = ([path], set(exts))
    for name, exts in EXTRA_EXTENSIONS.items():
        entry = folder_paths.folder_names_and_paths.get(name)
        if entry is not None and _extra_folder(name) not in folder_paths.folder_names_and_paths:
            # A sibling entry over the same folders (ComfyUI-GGUF does the same): ComfyUI's own
            # extension set is shared by many folders and must not change.
            folder_paths.folder_names_and_paths[_extra_folder(name)] = (entry[0], set(exts))


def _extra_folder(name: str) -> str:
    return f"{name}_multitalk_extra"


def list_model_files(folder: str) -> list[str]:
    """Files ComfyUI lists for a model folder; empty outside ComfyUI."""
    folder_paths = _comfy_module("folder_paths")
    if folder_paths is None:
        return []
    names: list[str] = []
    for name in (folder, _extra_folder(folder)):
        try:
            names += [n for n in folder_paths.get_filename_list(name) if n not in names]
        except Exception:  # the folder is not registered
            continue
    return names


def resolve_model_path(folder: str, name: str) -> str:
    """A file chosen in a model-folder widget, or a plain path outside ComfyUI."""
    name = str(name).strip()
    if not name:
        raise CheckpointError(f"No file given for the '{folder}' input: choose a file or type a path.")
    folder_paths = _comfy_module("folder_paths")
    full = folder_paths.get_full_path(folder, name) if folder_paths is not None else None
    if full is None and os.path.exists(os.path.expanduser(name)):
        full = os.path.expanduser(name)
    if full is not None:
        note_input(full)  # a model file the run reads: no output may be written over it
        return full
    where = f"ComfyUI's models/{folder} folder or " if folder_paths is not None else ""
    raise CheckpointError(
        f"Cannot find '{name}' in {where}the file system. Put the file in models/{folder} "
        "or give a full path."
    )


def default_device() -> torch.device:
    mm = _comfy_module("comfy.model_management")
    if mm is not None:
        return mm.get_torch_device()
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


DEVICE_CHOICES = ("auto", "cpu")


def chosen_device(choice: str) -> torch.device:
    """A loader's device widget: auto = the GPU ComfyUI uses (or the best one here), cpu = the CPU."""
    if choice not in DEVICE_CHOICES:
        raise CheckpointError(f"Unknown device '{choice}': choose {' or '.join(DEVICE_CHOICES)}.")
    return torch.device("cpu") if choice == "cpu" else default_device()


def offload_device() -> torch.device:
    mm = _comfy_module("comfy.model_management")
    if mm is not None:
        return mm.unet_offload_device()
    return torch.device("cpu")


def check_interrupt() -> None:
    """Raise if the user pressed Cancel in ComfyUI (or the CLI asked to stop)."""
    mm = _comfy_module("comfy.model_management")
    if mm is not None:
        mm.throw_exception_if_processing_interrupted()
    if _interrupt_flag.is_set():
        _interrupt_flag.clear()
        raise KeyboardInterrupt("Generation interrupted.")


def request_interrupt() -> None:
    """Ask a running job outside ComfyUI to stop at its next step."""
    _interrupt_flag.set()


def clear_interrupt() -> None:
    """Forget a stop request nobody consumed (the job ended between steps)."""
    _interrupt_flag.clear()


class Progress:
    """Progress over a known number of units: ComfyUI's bar inside, a printed line outside.

    Inside ComfyUI each update's message also goes to the browser as a "multitalk.progress"
    event (web/js/multitalk_progress.js shows it on the node), with a preview picture when one
    was given by set_preview()."""

    def __init__(self, total: int, label: str = "MultiTalk", node_id: Optional[str] = None):
        self.total = max(int(total), 1)
        self.done = 0
        self.label = label
        self._preview = None
        utils = _comfy_module("comfy.utils")
        self._bar = utils.ProgressBar(self.total, node_id=node_id) if utils is not None else None
        self._node_id = node_id or (executing_node_id() if self._bar is not None else None)

    def set_preview(self, preview) -> None:
        """A preview (ComfyUI's ("JPEG", PIL image, max size) tuple) sent with the next update."""
        self._preview = preview

    def update(self, n: int = 1, message: str = "") -> None:
        self.done = min(self.done + n, self.total)
        if self._bar is not None:
            preview, self._preview = self._preview, None
            self._bar.update_absolute(self.done, self.total, preview)
            send_event(PROGRESS_EVENT, {"node": self._node_id, "text": message, "value": self.done,
                                        "max": self.total})
        elif os.environ.get("MULTITALK_QUIET") != "1":
            extra = f" {message}" if message else ""
            print(f"[{self.label}] {self.done}/{self.total}{extra}", file=sys.stderr, flush=True)


def progress_callback(total: int, label: str) -> Callable[[int, str], None]:
    """A callback models/ code can call as (units_done_increment, message)."""
    bar = Progress(total, label)
    return lambda n=1, message="": bar.update(n, message)


def temp_directory() -> Optional[str]:
    """ComfyUI's temp folder (what /view?type=temp serves); None outside ComfyUI."""
    folder_paths = _comfy_module("folder_paths")
    return folder_paths.get_temp_directory() if folder_paths is not None else None


def save_temp_images(images: torch.Tensor, prefix: str = "multitalk") -> list[dict]:
    """Save IMAGE [B,H,W,3] as temp PNGs for a node's {"ui": {"images": ...}}; [] outside ComfyUI."""
    folder_paths = _comfy_module("folder_paths")
    if folder_paths is None:
        return []
    import uuid

    from PIL import Image

    folder = folder_paths.get_temp_directory()
    os.makedirs(folder, exist_ok=True)
    saved = []
    for image in images:
        name = f"{prefix}_{uuid.uuid4().hex[:12]}.png"
        path = check_output(os.path.join(folder, name), overwrite=False, kind="image")
        pixels = (image.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        Image.fromarray(pixels).save(path, compress_level=1)
        name = os.path.basename(path)
        saved.append({"filename": name, "subfolder": "", "type": "temp"})
    return saved


def model_file_input(folder: str, what: str, optional_none: bool = False) -> tuple:
    """A drop-down of ComfyUI's model folder, or a path box outside ComfyUI / when it is empty."""
    files = list_model_files(folder)
    if files:
        return ((["none"] if optional_none else []) + files,
                {"tooltip": f"{what} from ComfyUI's models/{folder} folder."})
    return ("STRING", {"default": "", "tooltip": f"{what}: a file in models/{folder} or a full path"
                       + (" (empty: none)." if optional_none else ".")})


def model_output_path(folder: str, name: str, extension: str = ".safetensors") -> str:
    """Where a node writes a model file. Absolute paths are used as given; a relative name goes
    into ComfyUI's first models/<folder> directory (so loaders list the file), or is taken
    relative to the working directory outside ComfyUI."""
    name = os.path.expanduser(str(name).strip())
    if not name:
        raise CheckpointError(f"No output name given: type a file name for models/{folder} or a full path.")
    if not name.endswith(extension):
        name += extension
    folder_paths = _comfy_module("folder_paths")
    if os.path.isabs(name) or folder_paths is None:
        return os.path.abspath(name)
    return os.path.join(folder_paths.get_folder_paths(folder)[0], name)


NOTES_UI_KEY = "multitalk_notes"  # read by web/js/multitalk_notes.js, which shows them on the node


def notes_ui(notes) -> dict:
    """UI payload that shows a node's notes (warnings, fallbacks, plan changes) on the node."""
    notes = [str(n) for n in notes if str(n).strip()]
    return {NOTES_UI_KEY: notes} if notes else {}


PROGRESS_EVENT = "multitalk.progress"  # read by web/js/multitalk_progress.js


def _server():
    """ComfyUI's PromptServer instance, or None."""
    return getattr(getattr(_comfy_module("server"), "PromptServer", None), "instance", None)


def executing_node_id() -> Optional[str]:
    """The id of the node ComfyUI is running now (None outside ComfyUI or between nodes)."""
    utils = _comfy_module("comfy_execution.utils")
    context = utils.get_executing_context() if hasattr(utils, "get_executing_context") else None
    return str(context.node_id) if context is not None else getattr(_server(), "last_node_id", None)


def send_event(event: str, data: dict) -> None:
    """Send a websocket message to the browser that queued the prompt; nothing outside ComfyUI."""
    if _server() is not None:
        _server().send_sync(event, data, getattr(_server(), "client_id", None))


def latent_previewer() -> Optional[Callable[[torch.Tensor], object]]:
    """Wan 2.1 latent [1, 16, T, h, w] -> ComfyUI's preview of its first frame, by ComfyUI's own
    previewer (its latent-to-RGB factors or TAESD, as the user's preview setting says); None
    outside ComfyUI or when previews are off."""
    preview, formats = _comfy_module("latent_preview"), _comfy_module("comfy.latent_formats")
    previewer = preview.get_previewer(default_device(), formats.Wan21()) if preview and hasattr(formats, "Wan21") \
        else None
    return (lambda latent: previewer.decode_latent_to_preview_image("JPEG", latent)) if previewer else None


def register_routes(add: Callable[[object], None]) -> bool:
    """Let `add(routes)` put the pack's HTTP routes on ComfyUI's server (once); False outside ComfyUI."""
    instance = _server()
    if instance is None or getattr(instance, "_multitalk_routes", False):
        return False
    add(instance.routes)
    instance._multitalk_routes = True
    return True


def input_image_path(name: str) -> str:
    """The file a Load Image widget value names ("x.png", "sub/x.png", "x.png [output]"), inside
    ComfyUI's input, temp or output folder; SpeakerInputError when it is missing or outside them."""
    folder_paths = _comfy_module("folder_paths")
    if folder_paths is None:
        raise SpeakerInputError("Pictures are looked up by name only inside ComfyUI.")
    path = os.path.realpath(folder_paths.get_annotated_filepath(str(name)))
    bases = [os.path.realpath(folder_paths.get_directory_by_type(kind)) for kind in ("input", "temp", "output")]
    if not any(os.path.commonpath([path, base]) == base for base in bases) or not os.path.isfile(path):
        raise SpeakerInputError(f"No picture '{name}' in ComfyUI's input folder: choose or upload it again.")
    return path


# --- ComfyUI's model manager -----------------------------------------------------------------
# Inside ComfyUI the DiT is loaded through model_management.load_models_gpu, wrapped in a
# ModelPatcher whose loading and unloading drive the pack's DiTPlacement: ComfyUI frees what the
# DiT needs before it loads, gives it a weight budget (the rest of the blocks are then streamed
# by block swap), and can shrink or unload it when another model needs the GPU.
_PATCHER_CLASS = None


def _patcher_class():
    global _PATCHER_CLASS
    model_patcher = _comfy_module("comfy.model_patcher")
    if model_patcher is None or not hasattr(model_patcher, "ModelPatcher"):
        return None
    if _PATCHER_CLASS is None:
        _PATCHER_CLASS = _define_patcher(model_patcher.ModelPatcher)
    return _PATCHER_CLASS


def _define_patcher(base):
    class MultiTalkPatcher(base):
        """ComfyUI's view of one MultiTalk DiT; `placement` does the moving."""

        def __init__(self, placement):
            self.placement = placement
            super().__init__(placement.model, placement.device, placement.offload_device, size=placement.size())

        def model_size(self):
            return self.placement.size()

        def loaded_size(self):
            return self.placement.loaded()

        def current_loaded_device(self):
            return self.placement.device if self.placement.loaded() else self.placement.offload_device

        def model_dtype(self):
            return self.placement.model.compute_dtype

        def partially_load(self, device_to, extra_memory=0, force_patch_weights=False):
            budget = None if extra_memory >= 1e30 else self.placement.loaded() + extra_memory
            return self.placement.load(budget)

        def partially_unload(self, device_to, memory_to_free=0):
            return self.placement.free(int(memory_to_free))

        def detach(self, unpatch_all=True):
            if unpatch_all:  # False: ComfyUI only forgets the patcher (it is being deleted)
                self.placement.unload()
            return self.model

        def is_clone(self, other):
            return False  # LoRA copies share some weights but not all: ComfyUI counts each whole

        def clone_has_same_weights(self, clone):
            return False

    return MultiTalkPatcher


def load_managed(owner, placement, memory_required: int) -> bool:
    """Load a DiT through ComfyUI's model manager (one patcher kept on `owner`); False outside ComfyUI."""
    mm = _comfy_module("comfy.model_management")
    patcher_class = _patcher_class()
    if mm is None or patcher_class is None:
        return False
    patcher = getattr(owner, "_comfy_patcher", None)
    if patcher is None or patcher.placement is not placement:
        patcher = patcher_class(placement)
        owner._comfy_patcher = patcher
    mm.load_models_gpu([patcher], memory_required=int(memory_required))
    return True


def free_for(nbytes: int, device: torch.device) -> None:
    """Ask ComfyUI to free `nbytes` on `device` (it unloads other models as it sees fit)."""
    mm = _comfy_module("comfy.model_management")
    if mm is not None and torch.device(device).type != "cpu":
        mm.free_memory(nbytes, torch.device(device))


def install_memory_requests() -> None:
    """Let the pack's encoders ask ComfyUI for memory before they move onto a GPU."""
    from ..models.encoders.devices import on_memory_request

    if _comfy_module("comfy.model_management") is not None:
        on_memory_request(free_for)
