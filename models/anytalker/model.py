"""AnyTalker's DiT: the pack's Wan2.1-I2V backbone with audio-face binding for N identities.

Parameter names equal the released checkpoints (`1_3B-single-v1.pth`, `14B-multi-v1.pth`), so a
state dict loads strictly with no renaming. Everything but the identity conditioning (patch,
time and text embeddings, modulation, self-attention with 3-D RoPE, text + image cross-attention,
FFN, head, img_emb) is the pack's Wan DiT code.
"""
from __future__ import annotations

from typing import Optional

import torch

from ..dit.audio_adapter import latent_frame_windows
from ..dit.config import CLIP_TOKENS
from ..dit.layers import ImageProjection
from ..dit.model import MultiTalkDiT, TextContext
from ..dit.rope import video_rope_table
from ..errors import GenerationInputError
from .attention import AnyTalkerContext, IdentityTokens
from .audio_tokens import FrameAudioProjection
from .blocks import AudioFaceBlock, LegacyFaceAudioBlock
from .config import FACE_TOKENS, VARIANT_AF, VARIANT_LEGACY, AnyTalkerConfig


class AnyTalkerDiT(MultiTalkDiT):
    def __init__(self, config: AnyTalkerConfig, attention: str = "auto"):
        block = AudioFaceBlock if config.variant == VARIANT_AF else LegacyFaceAudioBlock
        super().__init__(config.dit, attention, block_factory=block)  # legacy: builds MultiTalk's audio_proj
        self.anytalker_config = config
        dim = config.dit.dim
        if config.variant == VARIANT_AF:
            self.audio_emb = FrameAudioProjection(config.af_audio_window, config.af_audio_feature_dim,
                                                  config.af_audio_intermediate_dim, dim, config.af_audio_tokens)
        self.audio_ref_emb = ImageProjection(config.face_dim, dim)
        # Per-latent-frame audio-face attention when the audio has 4(T-1)+1 frames (else the mask).
        self.grouped_attention = True

    @property
    def variant(self) -> str:
        return self.anytalker_config.variant

    @property
    def family(self) -> str:
        return self.anytalker_config.family

    def forward(self, x: torch.Tensor, t: torch.Tensor, context: TextContext, clip_fea: torch.Tensor,
                y: torch.Tensor, audio: Optional[torch.Tensor] = None, faces: Optional[torch.Tensor] = None,
                face_masks: Optional[torch.Tensor] = None) -> torch.Tensor:  # type: ignore[override]
        """Predict the flow velocity.

        Args:
            x: noisy latent [B, 16, T, H, W].
            t: timesteps [B] (or a scalar) in 0..1000 (the official passes the scheduler's integers).
            context: text embeddings [B, L, text_dim] or a list of [L_i, text_dim], L <= text_len.
            clip_fea: CLIP penultimate features of the whole image [B or 1, 257, 1280].
            y: condition [B or 1, 20, T, H, W]: 4 face-region mask channels, then the image latent.
            audio: per-identity wav2vec windows [B or 1, N, F, 5, layers, C] (or [N, F, 5, layers, C]);
                the 14B variant needs F = 4(T-1)+1. None with faces None: no identities (plain I2V).
            faces: per-identity CLIP features of the face crops [B or 1, N, 257, 1280] (or [N, 257, 1280]).
            face_masks: per-identity soft masks on the token grid (T, H/2, W/2): [N, H/2, W/2] (static),
                [N, T, H/2, W/2] or [B, N, T, H/2, W/2].
        Returns:
            velocity [B, 16, T, H, W] in fp32.
        """
        batch = x.shape[0]
        tokens, grid = self._embed_video(x, self._expand(y, batch, "y"))
        context_tokens = self._context(context, self._expand(clip_fea, batch, "clip_fea"), self.compute_dtype)
        if self.variant == VARIANT_LEGACY:  # the 14B text attention runs over [CLIP tokens; text] (FACTS §6.2)
            context_tokens = torch.cat([context_tokens[:, :CLIP_TOKENS], context_tokens], dim=1)
        ctx = AnyTalkerContext(grid=grid, rope_cos=None, rope_sin=None, context=context_tokens,
                               attention=self.attention, grouped_attention=self.grouped_attention,
                               identities=self.identity_tokens(audio, faces, face_masks, grid, batch))
        ctx.rope_cos, ctx.rope_sin = video_rope_table(grid, self.config.head_dim, x.device)
        return self._run_blocks(tokens, t, ctx)

    def identity_tokens(self, audio: Optional[torch.Tensor], faces: Optional[torch.Tensor],
                        face_masks: Optional[torch.Tensor], grid: tuple[int, int, int],
                        batch: int) -> Optional[IdentityTokens]:
        """Audio tokens, face tokens and flattened masks of every identity (None: no identities)."""
        if audio is None and faces is None and face_masks is None:
            return None
        if audio is None or faces is None or face_masks is None:
            raise GenerationInputError("AnyTalker needs audio, faces and face_masks together (one of each per "
                                       "identity), or none of them for plain image-to-video.")
        audio = self._expand(_with_batch(audio, 6, "audio"), batch, "audio")
        faces = self._expand(_with_batch(faces, 4, "faces"), batch, "faces")
        masks = flatten_face_masks(face_masks, grid, batch).to(self.compute_dtype)  # [B, N, L, 1]
        counts = (audio.shape[1], faces.shape[1], masks.shape[1])
        if len(set(counts)) != 1:
            raise GenerationInputError(f"{counts[0]} audio tracks, {counts[1]} faces and {counts[2]} face masks: "
                                       "give one face and one mask per audio track (left to right).")
        audio_tokens = self.audio_tokens(audio, grid[0])
        if self.variant == VARIANT_AF:
            audio_tokens = audio_tokens.flatten(2, 3)  # [B, N, F*tokens, dim], frame-major
        face_tokens = self.face_tokens(faces)
        return IdentityTokens(audio=list(audio_tokens.unbind(1)), faces=list(face_tokens.unbind(1)),
                              masks=list(masks.unbind(1)), audio_frames=audio.shape[2],
                              tokens_per_frame=self._tokens_per_frame)

    @property
    def _tokens_per_frame(self) -> int:
        cfg = self.anytalker_config
        return cfg.af_audio_tokens if self.variant == VARIANT_AF else cfg.dit.audio_tokens

    def audio_tokens(self, audio: torch.Tensor, latent_frames: Optional[int] = None) -> torch.Tensor:
        """wav2vec windows [B, N, F, window, layers, C] -> tokens: 1.3B [B, N, F, tokens, dim] (per video
        frame); 14B [B, N, T, tokens, token_dim] (per latent frame, MultiTalk's projection)."""
        cfg = self.anytalker_config
        window, feature_dim = cfg.audio_window, cfg.audio_feature_dim
        if audio.dim() != 6 or audio.shape[3] != window or audio.shape[4] * audio.shape[5] != feature_dim:
            raise GenerationInputError(
                f"Audio windows {tuple(audio.shape)} do not fit this model: it expects [B, N, F, {window}, layers, C] "
                f"with layers x C = {feature_dim} (the wav2vec2 it was trained with).")
        audio = audio.to(self.compute_dtype)
        if self.variant == VARIANT_AF:
            return self.audio_emb(audio)
        frames, scale = audio.shape[2], cfg.dit.vae_scale
        expected = scale * (latent_frames - 1) + 1 if latent_frames else None
        if (frames - 1) % scale or (expected is not None and frames != expected):
            raise GenerationInputError(
                f"The audio covers {frames} video frames; the 14B model needs {expected or f'{scale}n+1'} "
                f"({scale}(T-1)+1 for T latent frames): cut or pad the audio windows to the video length.")
        first, later = latent_frame_windows(audio, cfg.dit.vae_scale, cfg.dit.audio_window)
        return self.audio_proj(first, later)

    def face_tokens(self, faces: torch.Tensor) -> torch.Tensor:
        """CLIP features of face crops [..., 257, face_dim] -> face tokens [..., 257, dim]."""
        if faces.shape[-2:] != (FACE_TOKENS, self.anytalker_config.face_dim):
            raise GenerationInputError(f"Face features must be [..., {FACE_TOKENS}, {self.anytalker_config.face_dim}] "
                                       f"(CLIP penultimate states of each face crop); got {tuple(faces.shape)}.")
        return self.audio_ref_emb(faces.to(self.compute_dtype))


def _with_batch(tensor: torch.Tensor, dims: int, name: str) -> torch.Tensor:
    if tensor.dim() == dims - 1:
        return tensor.unsqueeze(0)
    if tensor.dim() != dims:
        raise GenerationInputError(f"'{name}' has {tensor.dim()} dims ({tuple(tensor.shape)}); expected "
                                   f"{dims} with a batch axis or {dims - 1} without.")
    return tensor


def flatten_face_masks(face_masks: torch.Tensor, grid: tuple[int, int, int], batch: int) -> torch.Tensor:
    """Per-identity token-grid masks -> [B, N, L, 1] as the blocks use them (t-major tokens)."""
    t, h, w = grid
    masks = face_masks
    if masks.dim() == 3:  # [N, h, w]: static in time, as the official pipeline builds them
        masks = masks[:, None].expand(-1, t, -1, -1)
    if masks.dim() == 4:
        masks = masks.unsqueeze(0)
    if masks.dim() != 5 or tuple(masks.shape[2:]) != (t, h, w):
        raise GenerationInputError(
            f"Face masks {tuple(face_masks.shape)} do not fit the token grid (T, H/2, W/2) = {grid}: give "
            f"[N, {h}, {w}], [N, {t}, {h}, {w}] or [B, N, {t}, {h}, {w}].")
    if masks.shape[0] not in (1, batch):
        raise GenerationInputError(f"Face masks have batch {masks.shape[0]} but the latent has batch {batch}.")
    return masks.expand(batch, *masks.shape[1:]).flatten(2).unsqueeze(-1)
