"""The on-disk training cache: one safetensors file per window, plus manifest.json.

A window file holds everything one training sample needs, already encoded:
  latents [16, T, h, w]   normalised VAE latents of the window's frames (fp32)
  y       [20, T, h, w]   the I2V condition built as the sampler builds it (first-frame mask +
                          latent of the first frame followed by grey frames)
  audio   [S, F + 4, L, C] each speaker's wav2vec features for the window's F frames with
                          AUDIO_CONTEXT frames either side (clamped to the track), so the
                          per-frame 5-windows equal those of the whole track
  text    [Lt, D]          caption embedding (valid tokens only)
  clip    [257, Dc]        CLIP vision penultimate features of the first frame
  masks   [S+1, h, w]      speaker masks then the background, on the latent grid, from the
                          window's own first frame
optionally, for training the window as a continuation (what long-video sampling does):
  y_motion, clip_motion   MultiTalk mode: the first `motion_multitalk` frames known in y, CLIP of
                          the last known frame
  y_ref, clip_ref         InfiniteTalk mode: y and CLIP of the clip's reference (first) frame
  speech  [S, F * 640]    each speaker's 16 kHz sound under the window, int16 (preview clips)
and, as metadata, the encoder sizes a model must match, the source clip, the window index and
the task ("talk", or "i2v" for a clip without speech: image-to-video data with zero audio).
Tensors are stored in bf16 (what the model computes in) and read back as fp32.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Mapping

import torch

from ..dit.config import DiTConfig
from ..errors import DatasetInputError

WINDOW_FORMAT = "multitalk-train-window/1"
MANIFEST = "manifest.json"
AUDIO_CONTEXT = 2  # wav2vec frames either side of a video frame (the 5-frame window)
DIM_KEYS = ("latent_channels", "text_dim", "clip_dim", "audio_layers", "audio_hidden")
TENSOR_KEYS = ("latents", "y", "audio", "text", "clip", "masks")
CONTINUATION_KEYS = {"multitalk": ("y_motion", "clip_motion"), "infinitetalk": ("y_ref", "clip_ref")}
CACHE_DTYPE = torch.bfloat16
TASKS = ("talk", "i2v")


@dataclass(frozen=True)
class WindowInfo:
    """What the trainer needs to know about a window file without reading its tensors."""

    path: str
    source: str
    index: int
    frames: int
    speakers: int
    latent_shape: tuple[int, int, int]  # (T, h, w)
    dims: dict
    task: str = "talk"  # "i2v": a clip without speech (zero audio, image-to-video data)
    motion: tuple[tuple[str, int], ...] = ()  # (continuation mode, motion frames) the file holds

    @property
    def group(self) -> tuple:
        """Windows of one group can share a batch (same tensor shapes)."""
        return (self.latent_shape, self.speakers)

    def motion_frames(self, mode: str) -> int:
        """Known frames of this window's `mode` continuation variant (0: the file has none)."""
        return dict(self.motion).get(mode, 0)


def write_window(path: str, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, object]) -> None:
    from safetensors.torch import save_file

    keys = list(TENSOR_KEYS) + [k for pair in CONTINUATION_KEYS.values() for k in pair if k in tensors]
    data = {k: tensors[k].detach().cpu().to(CACHE_DTYPE).contiguous() for k in keys}
    if "speech" in tensors:  # the window's sound for previews, int16 PCM as it is
        data["speech"] = tensors["speech"].detach().cpu().to(torch.int16).contiguous()
    save_file(data, path, metadata={"format": WINDOW_FORMAT, **{k: str(v) for k, v in meta.items()}})


def read_window_info(path: str) -> WindowInfo:
    from safetensors import safe_open

    try:
        with safe_open(path, framework="pt") as handle:
            meta = handle.metadata() or {}
            shapes = {k: tuple(handle.get_slice(k).get_shape()) for k in handle.keys()}
    except Exception as exc:
        raise DatasetInputError(f"Cannot read the cache file '{path}' ({exc}): prepare the dataset again.") from None
    if meta.get("format") != WINDOW_FORMAT or set(TENSOR_KEYS) - set(shapes):
        raise DatasetInputError(f"'{path}' is not a MultiTalk training window ({WINDOW_FORMAT}): prepare the "
                                "dataset again with MultiTalk Prepare Dataset.")
    motion = tuple((mode, int(meta.get(f"motion_{mode}", 0))) for mode, keys in CONTINUATION_KEYS.items()
                   if set(keys) <= set(shapes))
    return WindowInfo(path=path, source=meta.get("source", ""), index=int(meta.get("window_index", 0)),
                      frames=int(meta["frames"]), speakers=shapes["audio"][0],
                      latent_shape=tuple(shapes["latents"][1:]), dims={k: int(meta[k]) for k in DIM_KEYS},
                      task=meta.get("task", "talk"), motion=motion)


def read_window(info: WindowInfo) -> dict[str, torch.Tensor]:
    """The window's tensors as fp32 (the file stores them in 16 bits)."""
    from safetensors.torch import load_file

    return {k: v.float() for k, v in load_file(info.path).items()}


@dataclass
class TrainingCache:
    folder: str
    windows: list[WindowInfo]
    dims: dict

    def __len__(self) -> int:
        return len(self.windows)


def load_cache(folder: str) -> TrainingCache:
    """The windows listed in a cache folder's manifest; DatasetInputError when there are none.

    Cache files are the pack's own, not noted as inputs (output_files): Prepare Dataset replaces
    them on a re-run. The trainer keeps its outputs off them itself."""
    folder = os.path.expanduser(str(folder).strip())
    manifest = os.path.join(folder, MANIFEST)
    if not os.path.isfile(manifest):
        raise DatasetInputError(f"'{folder}' is not a training cache (no {MANIFEST}): run MultiTalk Prepare "
                                "Dataset first and give its cache folder.")
    with open(manifest, encoding="utf-8") as handle:
        listed = json.load(handle).get("windows", [])
    if not listed:
        raise DatasetInputError(f"The training cache '{folder}' holds no windows: every clip was skipped when it "
                                f"was prepared (see 'skipped' in {manifest}).")
    windows = [read_window_info(os.path.join(folder, name)) for name in listed]
    dims = windows[0].dims
    for info in windows[1:]:
        if info.dims != dims:
            raise DatasetInputError(f"'{info.path}' was encoded with other encoders ({info.dims}) than "
                                    f"'{windows[0].path}' ({dims}): prepare the whole cache with the same models.")
    return TrainingCache(folder, windows, dims)


def check_model_fits(cache: TrainingCache, config: DiTConfig) -> None:
    """DatasetInputError naming each size where the cache and the model disagree."""
    dims = cache.dims
    wanted = {
        "latent channels": (dims["latent_channels"], config.out_dim),
        "text embedding width": (dims["text_dim"], config.text_dim),
        "CLIP feature width": (dims["clip_dim"], config.clip_dim),
        "wav2vec layers x width": (dims["audio_layers"] * dims["audio_hidden"], config.audio_feature_dim),
        "I2V input channels": (2 * dims["latent_channels"] + 4, config.in_dim),
    }
    bad = [f"{name}: cache {have}, model {need}" for name, (have, need) in wanted.items() if have != need]
    if config.audio_window != 2 * AUDIO_CONTEXT + 1:
        bad.append(f"audio window: cache {2 * AUDIO_CONTEXT + 1}, model {config.audio_window}")
    odd = [w for w in cache.windows if any(s % p for s, p in zip(w.latent_shape, config.patch_size))]
    if odd:
        bad.append(f"latent size {odd[0].latent_shape} of '{odd[0].path}' is not a multiple of the patch "
                   f"{config.patch_size}")
    if bad:
        raise DatasetInputError(f"The base model does not match the training cache '{cache.folder}': "
                                + "; ".join(bad) + ". Prepare the cache with the VAE, text encoder, CLIP vision "
                                "and wav2vec that belong to this model (or pick the matching model).")

