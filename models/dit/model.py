"""Wan2.1 image-to-video DiT with MultiTalk's audio layers.

Parameter names equal the released checkpoints (Wan2.1-I2V-14B + multitalk/infinitetalk
audio files), so files load with strict=True and no renaming.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import GenerationInputError
from .attention import AttentionFn, get_attention
from .audio_adapter import AudioProjection, latent_frame_windows
from .audio_attention import AudioRouting
from .batching import batch_size_for, split_batch
from .block import BlockContext, DiTBlock
from .config import CLIP_TOKENS, DiTConfig
from .layers import Head, ImageProjection, gelu_tanh_mlp, sinusoidal_embedding
from .localisation import DEFAULT_CHUNK_ELEMENTS
from .rope import video_rope_table
from .routing import MAX_SPEAKERS, ROUTING_MODES

TextContext = Union[torch.Tensor, Sequence[torch.Tensor]]
# (block input tokens [B, L, dim], a function running every block on tokens) -> block output tokens:
# lets a step cache keep or reuse the blocks' residual (models/sampling/step_cache).
BlockShortcut = Callable[[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]], torch.Tensor]


class MultiTalkDiT(nn.Module):
    def __init__(self, config: DiTConfig, attention: str = "auto",
                 block_factory: Optional[Callable[[DiTConfig], nn.Module]] = None):
        super().__init__()
        cfg = self.config = config
        block_factory = block_factory or DiTBlock
        self.patch_embedding = nn.Conv3d(cfg.in_dim, cfg.dim, kernel_size=cfg.patch_size, stride=cfg.patch_size)
        self.text_embedding = gelu_tanh_mlp(cfg.text_dim, cfg.dim, cfg.dim)
        self.time_embedding = nn.Sequential(nn.Linear(cfg.freq_dim, cfg.dim), nn.SiLU(), nn.Linear(cfg.dim, cfg.dim))
        self.time_projection = nn.Sequential(nn.SiLU(), nn.Linear(cfg.dim, 6 * cfg.dim))
        self.blocks = nn.ModuleList(block_factory(cfg) for _ in range(cfg.num_layers))
        self.head = Head(cfg.dim, cfg.out_dim, cfg.patch_size, cfg.eps)
        self.img_emb = ImageProjection(cfg.clip_dim, cfg.dim)
        if cfg.has_audio:
            self.audio_proj = AudioProjection(
                cfg.audio_window, cfg.audio_window_vf, cfg.audio_feature_dim, cfg.audio_intermediate_dim,
                cfg.audio_token_dim, cfg.audio_tokens, cfg.norm_output_audio)
        self.attention: AttentionFn = get_attention(attention)
        self.attention_name = "sdpa" if attention == "auto" else attention
        self.map_chunk_elements = DEFAULT_CHUNK_ELEMENTS
        # Runs the blocks: None = one after the other here; block swap installs a streaming runner.
        self.block_runner: Optional[Callable] = None
        # Guidance passes in one batch: "batched" (all items at once), "sequential" (one by one) or
        # "auto" (as many at once as free device memory holds; see batching.py).
        self.batch_policy = "auto"

    def set_attention(self, name: str) -> None:
        """Switch the attention backend ("auto", "sdpa", "xformers", "flash_attn", "sageattention")."""
        self.attention = get_attention(name, self.patch_embedding.weight.device)
        self.attention_name = "sdpa" if name == "auto" else name

    @property
    def compute_dtype(self) -> torch.dtype:
        """Activation dtype: that of the (never quantised) patch embedding."""
        return self.patch_embedding.weight.dtype

    def forward(self, x: torch.Tensor, t: torch.Tensor, context: TextContext, clip_fea: torch.Tensor,
                y: torch.Tensor, audio: Optional[torch.Tensor] = None, ref_masks: Optional[torch.Tensor] = None,
                routing: str = "lrope", active_speakers: Optional[Sequence[int]] = None,
                shortcut: Optional[BlockShortcut] = None) -> torch.Tensor:
        """Predict the flow velocity.

        Args:
            x: noisy latent [B, 16, T, H, W] (H, W: latent size, multiples of 2).
            t: timesteps [B] (or a scalar) in 0..1000.
            context: text embeddings [B, L, text_dim] with L <= text_len, or a list of [L_i, text_dim];
                zero-padded to text_len inside (as the official model does).
            clip_fea: CLIP-H penultimate hidden states [B or 1, 257, 1280].
            y: I2V condition [B or 1, 20, T, H, W]: 4 mask channels, then the image latent.
            audio: per-speaker wav2vec windows [B or 1, S, F, 5, 12, 768], F = 4(T-1)+1 video
                frames; None skips the audio layers (plain image-to-video).
            ref_masks: speaker masks then the background mask [B or 1, S+1, h, w] (or [S+1, h, w])
                at any resolution (usually the latent grid), nearest-resized to the token grid.
                Needed only for S >= 2; ignored for one speaker.
            routing: "lrope" (the paper's, trained for 2 speakers) or "masked" (per-speaker
                attention gated by the adaptive masks) for S >= 2 speakers.
            active_speakers: per batch item, 1 or S: items with 1 use only speaker 0's audio
                and plain attention (the official "no audio" pass), so CFG passes batch.
            shortcut: runs in place of the blocks (given their input and the blocks), for step caches.
        Returns:
            velocity [B, 16, T, H, W] in fp32.
        """
        size = batch_size_for(self, x)
        if size < x.shape[0]:
            return torch.cat([self._forward(*args, shortcut=shortcut) for args in split_batch(
                size, x, t, context, clip_fea, y, audio, ref_masks, routing, active_speakers)])
        return self._forward(x, t, context, clip_fea, y, audio, ref_masks, routing, active_speakers, shortcut)

    def _forward(self, x: torch.Tensor, t: torch.Tensor, context: TextContext, clip_fea: torch.Tensor,
                 y: torch.Tensor, audio: Optional[torch.Tensor], ref_masks: Optional[torch.Tensor],
                 routing: str, active_speakers: Optional[Sequence[int]],
                 shortcut: Optional[BlockShortcut] = None) -> torch.Tensor:
        batch = x.shape[0]
        dtype = self.compute_dtype
        tokens, grid = self._embed_video(x, self._expand(y, batch, "y"))
        ctx = BlockContext(grid=grid, rope_cos=None, rope_sin=None, attention=self.attention,
                           context=self._context(context, self._expand(clip_fea, batch, "clip_fea"), dtype),
                           map_chunk_elements=self.map_chunk_elements)
        ctx.rope_cos, ctx.rope_sin = video_rope_table(grid, self.config.head_dim, x.device)
        if audio is not None and self.config.has_audio:
            self._prepare_audio(ctx, self._expand(audio, batch, "audio"), ref_masks, routing, active_speakers)
        return self._run_blocks(tokens, t, ctx, shortcut)

    def _run_blocks(self, tokens: torch.Tensor, t: torch.Tensor, ctx: BlockContext,
                    shortcut: Optional[BlockShortcut] = None) -> torch.Tensor:
        """Time modulation, every block, the head and unpatchify: tokens [B, L, dim] -> [B, C, T, H, W] fp32."""
        e = self._time(t, tokens.shape[0], tokens.device)  # [B, dim] fp32
        e0 = self._modulation(e)
        run = lambda x: self._blocks(x, e0, ctx)  # noqa: E731
        tokens = run(tokens) if shortcut is None else shortcut(tokens, run)
        return self._unpatchify(self.head(tokens, e), ctx.grid).float()

    def _blocks(self, tokens: torch.Tensor, e0: torch.Tensor, ctx: BlockContext) -> torch.Tensor:
        if self.block_runner is not None:
            return self.block_runner(self.blocks, tokens, e0, ctx)
        for block in self.blocks:
            tokens = block(tokens, e0, ctx)
        return tokens

    def _modulation(self, e: torch.Tensor) -> torch.Tensor:
        """[B, dim] time embedding -> [B, 6, dim] fp32 block modulation."""
        return self._linear_fp32(self.time_projection[1], F.silu(e)).unflatten(1, (6, self.config.dim))

    def time_modulation(self, t: torch.Tensor) -> torch.Tensor:
        """The blocks' time modulation e0 [B, 6, dim] fp32 for timesteps t [B] (what TeaCache measures)."""
        t = torch.as_tensor(t).reshape(-1)
        return self._modulation(self._time(t, t.numel(), self.patch_embedding.weight.device))

    @staticmethod
    def _expand(tensor: torch.Tensor, batch: int, name: str) -> torch.Tensor:
        if tensor.shape[0] == batch:
            return tensor
        if tensor.shape[0] == 1:
            return tensor.expand(batch, *tensor.shape[1:])
        raise GenerationInputError(f"'{name}' has batch {tensor.shape[0]} but the latent has batch {batch}.")

    def _embed_video(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int, int]]:
        cfg = self.config
        if x.shape[1] + y.shape[1] != cfg.in_dim or x.shape[2:] != y.shape[2:]:
            raise GenerationInputError(
                f"Latent {tuple(x.shape)} and condition {tuple(y.shape)} do not fit the model "
                f"(it expects {cfg.in_dim} channels together, same T, H, W).")
        if any(size % p for size, p in zip(x.shape[2:], cfg.patch_size)):
            raise GenerationInputError(f"Latent size {tuple(x.shape[2:])} is not a multiple of the patch "
                                       f"{cfg.patch_size}: image sides must be multiples of 16 pixels.")
        patches = self.patch_embedding(torch.cat([x, y], dim=1).to(self.compute_dtype))  # [B, dim, t, h, w]
        return patches.flatten(2).transpose(1, 2), tuple(patches.shape[2:])  # [B, L, dim]

    def _linear_fp32(self, linear: nn.Module, x: torch.Tensor) -> torch.Tensor:
        weight = linear.dequantized_weight(torch.float32) if hasattr(linear, "dequantized_weight") else linear.weight
        bias = None if linear.bias is None else linear.bias.float()
        return F.linear(x.float(), weight.float(), bias)

    def _time(self, t: torch.Tensor, batch: int, device: torch.device) -> torch.Tensor:
        t = torch.as_tensor(t, device=device, dtype=torch.float32).reshape(-1)
        if t.numel() not in (1, batch):
            raise GenerationInputError(f"{t.numel()} timesteps for a batch of {batch}.")
        t = t.expand(batch)
        first, _, second = self.time_embedding
        e = self._linear_fp32(first, sinusoidal_embedding(self.config.freq_dim, t))
        return self._linear_fp32(second, F.silu(e))

    def _context(self, context: TextContext, clip_fea: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        cfg = self.config
        items = list(context) if not torch.is_tensor(context) else list(context.unbind(0))
        if len(items) != clip_fea.shape[0]:
            items = items * clip_fea.shape[0] if len(items) == 1 else items
        too_long = [u.shape[0] for u in items if u.shape[0] > cfg.text_len]
        if too_long or any(u.shape[-1] != cfg.text_dim for u in items):
            raise GenerationInputError(f"Text context must be [<= {cfg.text_len}, {cfg.text_dim}]; got "
                                       f"{[tuple(u.shape) for u in items]}.")
        text = torch.stack([F.pad(u, (0, 0, 0, cfg.text_len - u.shape[0])) for u in items]).to(dtype)
        if clip_fea.shape[1:] != (CLIP_TOKENS, cfg.clip_dim):
            raise GenerationInputError(f"CLIP features must be [B, {CLIP_TOKENS}, {cfg.clip_dim}]; got "
                                       f"{tuple(clip_fea.shape)}.")
        return torch.cat([self.img_emb(clip_fea.to(dtype)), self.text_embedding(text)], dim=1)

    def _prepare_audio(self, ctx: BlockContext, audio: torch.Tensor, ref_masks: Optional[torch.Tensor],
                       routing: str, active_speakers: Optional[Sequence[int]]) -> None:
        cfg = self.config
        batch, speakers, frames = audio.shape[:3]
        expected = cfg.vae_scale * (ctx.grid[0] - 1) + 1
        if frames != expected or audio[0, 0, 0].numel() != cfg.audio_window * cfg.audio_feature_dim:
            raise GenerationInputError(
                f"Audio windows {tuple(audio.shape)} do not fit a {ctx.grid[0]}-latent-frame video: expected "
                f"[B, S, {expected}, {cfg.audio_window}, ...] with {cfg.audio_feature_dim} features per frame.")
        if routing not in ROUTING_MODES:
            raise GenerationInputError(f"Unknown routing '{routing}'; choose one of {', '.join(ROUTING_MODES)}.")
        if speakers > MAX_SPEAKERS[routing]:
            raise GenerationInputError(f"{speakers} speakers exceed the {MAX_SPEAKERS[routing]} that "
                                       f"'{routing}' routing supports.")
        audio = audio.unflatten(-1, (-1, 1)) if audio.dim() == 5 else audio
        first, later = latent_frame_windows(audio.to(self.compute_dtype), cfg.vae_scale, cfg.audio_window)
        tokens = self.audio_proj(first, later)  # [B, S, T, N, C]
        ctx.audio_tokens = tokens.permute(0, 2, 1, 3, 4).flatten(2, 3)  # [B, T, S*N, C]
        ctx.routing = self._routing(batch, speakers, routing, active_speakers, audio.device)
        if ctx.routing.multi_items is not None:
            ctx.class_masks = self._token_masks(ref_masks, speakers, batch, ctx)

    def _routing(self, batch: int, speakers: int, mode: str, active: Optional[Sequence[int]],
                 device: torch.device) -> AudioRouting:
        counts = [speakers] * batch if active is None else [int(n) for n in active]
        if len(counts) != batch or any(n not in (1, speakers) for n in counts):
            raise GenerationInputError(f"active_speakers {counts} must give 1 or {speakers} for each of {batch} items.")
        multi = [i for i, n in enumerate(counts) if n > 1]
        single = [i for i, n in enumerate(counts) if n == 1]
        as_index = (lambda items: torch.tensor(items, device=device) if items else None)
        return AudioRouting(num_speakers=speakers, tokens_per_speaker=self.config.audio_tokens, mode=mode,
                            multi_items=as_index(multi), single_items=as_index(single))

    def _token_masks(self, ref_masks: Optional[torch.Tensor], speakers: int, batch: int,
                     ctx: BlockContext) -> torch.Tensor:
        if ref_masks is None:
            raise GenerationInputError(f"{speakers} speakers need ref_masks (one per speaker + background).")
        masks = ref_masks if ref_masks.dim() == 4 else ref_masks.unsqueeze(0)
        if masks.shape[1] != speakers + 1:
            raise GenerationInputError(f"ref_masks has {masks.shape[1]} masks; {speakers} speakers need "
                                       f"{speakers + 1} (one per speaker, then the background).")
        _, h, w = ctx.grid
        tokens = F.interpolate(masks.float(), size=(h, w), mode="nearest") > 0  # [B', S+1, h, w]
        tokens = tokens.flatten(2).float()
        if tokens.shape[0] not in (1, batch):
            raise GenerationInputError(f"ref_masks has batch {tokens.shape[0]} but the latent has batch {batch}.")
        multi = ctx.routing.multi_items
        return tokens if tokens.shape[0] == 1 else tokens[multi]

    def _unpatchify(self, x: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        # [B, L, pt*ph*pw*C] -> [B, C, t*pt, h*ph, w*pw]
        (t, h, w), (pt, ph, pw) = grid, self.config.patch_size
        x = x.reshape(x.shape[0], t, h, w, pt, ph, pw, self.config.out_dim)
        return x.permute(0, 7, 1, 4, 2, 5, 3, 6).reshape(x.shape[0], self.config.out_dim, t * pt, h * ph, w * pw)
