"""Tiny seeded encoders, a matching tiny DiT and synthetic talking clips (tests, benchmark, demo).

The encoders keep the released structures (Wan VAE blocks, umt5, CLIP ViT at 224 px with 257
tokens, wav2vec2) at toy widths, so preparation and training run every real code path on a CPU
in seconds. The DiT config takes the encoders' widths.
"""
from __future__ import annotations

import json
import os
from dataclasses import replace

import numpy as np
import torch

from ..dit.config import DiTConfig
from ..dit.tiny import tiny_dit_config
from .dataset_prep import DatasetEncoders

TEXT_DIM, CLIP_DIM, W2V_LAYERS, W2V_HIDDEN = 32, 32, 2, 64


def tiny_training_dit_config(num_layers: int = 2, dim: int = 32, num_heads: int = 2) -> DiTConfig:
    """A tiny DiT whose input widths fit tiny_training_encoders()."""
    return replace(tiny_dit_config(num_layers, dim, num_heads), text_dim=TEXT_DIM, text_len=32, clip_dim=CLIP_DIM,
                   audio_feature_dim=W2V_LAYERS * W2V_HIDDEN)


def _save(state: dict, path: str) -> str:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, path)
    return path


def _tiny_wav2vec_state(seed: int) -> dict[str, torch.Tensor]:
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    torch.manual_seed(seed)
    config = Wav2Vec2Config(hidden_size=W2V_HIDDEN, num_hidden_layers=W2V_LAYERS, num_attention_heads=1,
                            intermediate_size=96, conv_dim=[16] * 7, num_conv_pos_embeddings=16,
                            num_conv_pos_embedding_groups=4, mask_time_prob=0.0)
    return {"wav2vec2." + k: v.clone() for k, v in Wav2Vec2Model(config).state_dict().items()}


def tiny_training_encoders(folder: str, seed: int = 0, real_vae: bool = True) -> DatasetEncoders:
    """Write tiny encoder files into `folder` and load them through the pack's loaders
    (real_vae False: the PoolingVAE stand-in, many times faster on a CPU)."""
    from ..audio import load_wav2vec
    from ..encoders import load_clip_vision, load_text_encoder, load_vae
    from ..encoders.tiny import tiny_clip_state, tiny_sentencepiece, tiny_text_encoder_state, tiny_vae_state

    os.makedirs(folder, exist_ok=True)
    text_state = tiny_text_encoder_state(d_model=TEXT_DIM, seed=seed)
    text_state["spiece_model"] = torch.frombuffer(bytearray(tiny_sentencepiece()), dtype=torch.uint8)
    clip_state = tiny_clip_state(hidden=CLIP_DIM, image=224, seed=seed)
    return DatasetEncoders(
        vae=load_vae(_save(tiny_vae_state(seed=seed), os.path.join(folder, "vae.safetensors"))) if real_vae
        else PoolingVAE(seed),
        wav2vec=load_wav2vec(_save(_tiny_wav2vec_state(seed), os.path.join(folder, "wav2vec.safetensors"))),
        text=load_text_encoder(_save(text_state, os.path.join(folder, "umt5.safetensors")), dtype=torch.float32),
        clip_vision=load_clip_vision(_save(clip_state, os.path.join(folder, "clip.safetensors")), num_heads=4),
    )


def synthetic_voice(seconds: float, freq: float, seed: int = 0, rate: int = 16000) -> np.ndarray:
    """A voiced-speech-like float32 track: a tone with syllable-rate bursts and a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    envelope = np.clip(np.sin(2 * np.pi * (3 + seed % 3) * t + seed), 0, None)
    return (0.2 * envelope * np.sin(2 * np.pi * freq * t) + 0.005 * rng.standard_normal(t.size)).astype(np.float32)


def synthetic_frames(voice: np.ndarray, frames: int, height: int, width: int, rate: int = 16000) -> torch.Tensor:
    """IMAGE [F, H, W, 3]: a face whose mouth opens with the voice's loudness at each frame."""
    import cv2

    out = np.empty((frames, height, width, 3), dtype=np.uint8)
    hop = rate // 25
    for i in range(frames):
        level = float(np.abs(voice[i * hop:(i + 1) * hop]).mean()) if i * hop < voice.size else 0.0
        canvas = np.full((height, width, 3), (40, 90, 140), dtype=np.uint8)
        centre = (width // 2, height // 2)
        cv2.ellipse(canvas, centre, (width // 4, height // 3), 0, 0, 360, (205, 170, 140), -1)
        mouth = max(1, int(level * 8 * height / 10))
        cv2.ellipse(canvas, (centre[0], centre[1] + height // 6), (width // 10, mouth), 0, 0, 360, (90, 30, 40), -1)
        out[i] = canvas
    return torch.from_numpy(out).float() / 255.0


def write_synthetic_clip(folder: str, name: str, seconds: float, size: tuple[int, int] = (128, 128),
                         speakers: int = 1, own_audio: bool = False, caption: str | None = "a person talks",
                         seed: int = 0) -> str:
    """Write `name`.mp4 (+ `name`.speakerK.wav per speaker unless own_audio, + `name`.txt); returns the video."""
    import soundfile

    from ..video_io import write_mp4

    voices = [synthetic_voice(seconds, 150.0 + 70 * k, seed + k) for k in range(speakers)]
    frames = synthetic_frames(sum(voices), int(seconds * 25), *size)
    video = os.path.join(folder, f"{name}.mp4")
    soundtrack = {"waveform": torch.from_numpy(voices[0])[None, None], "sample_rate": 16000} if own_audio else None
    write_mp4(video, frames, 25.0, soundtrack)
    if not own_audio:
        for k, voice in enumerate(voices, start=1):
            soundfile.write(os.path.join(folder, f"{name}.speaker{k}.wav"), voice, 16000)
    if caption is not None:
        with open(os.path.join(folder, f"{name}.txt"), "w", encoding="utf-8") as handle:
            handle.write(caption)
    return video


class PoolingVAE:
    """A stand-in with the Wan VAE's encode interface and strides (time 4, space 8, 16 channels):
    block averages and a fixed channel mix. For fast tests and benchmarks of the data path only."""

    def __init__(self, seed: int = 0):
        self.mix = torch.randn(16, 3, generator=torch.Generator().manual_seed(seed))  # [16, 3]

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        video = pixels.float().mul(2).sub(1)  # [F, H, W, 3] in -1..1
        groups = [video[:1]] + list(video[1:].split(4))  # first frame alone, then 4 per latent frame
        frames = torch.stack([g.mean(0) for g in groups])  # [T, H, W, 3]
        pooled = torch.nn.functional.avg_pool2d(frames.permute(0, 3, 1, 2), 8)  # [T, 3, H/8, W/8]
        return torch.einsum("ck,tkhw->cthw", self.mix, pooled)[None]  # [1, 16, T, h, w]


def write_synthetic_cache(folder: str, windows: int = 4, frames: int = 9, latent_size: tuple[int, int] = (4, 4),
                          speakers: int = 1, config: DiTConfig | None = None, seed: int = 0,
                          audio_layers: int = W2V_LAYERS, silent_windows: int = 0) -> str:
    """A training cache of random windows whose latents depend on their audio (so the adapter has
    something to learn), with the widths of `config` (default: tiny_training_dit_config()); the
    last `silent_windows` are image-to-video windows of a speechless clip (zero audio)."""
    from .cache import AUDIO_CONTEXT, MANIFEST, write_window

    config = config or tiny_training_dit_config()
    g = torch.Generator().manual_seed(seed)
    layers, hidden = audio_layers, config.audio_feature_dim // audio_layers
    t_lat, (h, w) = (frames - 1) // 4 + 1, latent_size
    motion = 5 if frames > 5 else 1  # known frames of the continuation variants
    motion_latents = (motion - 1) // 4 + 1
    names = []
    os.makedirs(folder, exist_ok=True)
    for index in range(windows):
        audio = torch.randn(speakers, frames + 2 * AUDIO_CONTEXT, layers, hidden, generator=g)
        silent = index >= windows - silent_windows
        audio = torch.zeros_like(audio) if silent else audio
        loud = audio[0, AUDIO_CONTEXT::4, 0, :16][:t_lat].T  # [16, T]: one value per channel and latent frame
        latents = loud[:, :, None, None] + 0.3 * torch.randn(16, t_lat, h, w, generator=g)
        y = torch.cat([torch.zeros(4, t_lat, h, w), 0.5 * torch.randn(16, t_lat, h, w, generator=g)])
        y[:4, 0] = 1.0  # first-frame mask
        masks = torch.ones(speakers + 1, h, w)
        if speakers > 1:
            masks = torch.stack([(torch.arange(w) * speakers // w == s).float().expand(h, w) for s in range(speakers)]
                                + [torch.zeros(h, w)])
        clip = torch.randn(257, config.clip_dim, generator=g)
        y_motion = torch.cat([torch.zeros(4, t_lat, h, w), y[4:]])
        y_motion[:4, :motion_latents] = 1.0  # the first `motion` frames known
        tensors = {"latents": latents, "y": y, "audio": audio, "text": torch.randn(5, config.text_dim, generator=g),
                   "clip": clip, "masks": masks, "y_motion": y_motion, "clip_motion": clip.flip(0),
                   "y_ref": y, "clip_ref": clip}
        if not silent:  # the sound under the window (preview clips play it)
            voices = [synthetic_voice(frames / 25, 150.0 + 70 * k, seed + index) for k in range(speakers)]
            tensors["speech"] = torch.from_numpy((np.stack(voices) * 32767).astype(np.int16))
        meta = {"source": f"synthetic{index}.mp4", "window_index": index, "start_frame": 0, "frames": frames,
                "motion_multitalk": motion, "motion_infinitetalk": motion, "task": "i2v" if silent else "talk",
                "speakers": speakers, "latent_channels": 16, "text_dim": config.text_dim,
                "clip_dim": config.clip_dim, "audio_layers": layers, "audio_hidden": hidden}
        names.append(f"synthetic_w{index:04d}.safetensors")
        write_window(os.path.join(folder, names[-1]), tensors, meta)
    with open(os.path.join(folder, MANIFEST), "w", encoding="utf-8") as handle:
        json.dump({"format": 1, "windows": names, "skipped": [], "notes": []}, handle)
    return folder
