"""MultiTalk Sampler: image + per-speaker audio + prompt -> talking video frames of any length."""
from __future__ import annotations

import logging
import os

import torch

from ..models.output_files import atomic_write, check_output
from ..models.sampling.colour import OFFICIAL_STRENGTH
from ..models.sampling.generate import GenerationInputs, Hooks, VideoGenerator
from ..models.sampling.options import apply_options
from ..models.sampling.settings import SamplerSettings, validate_settings
from ..models.sampling.plan import MODES, default_motion_frames
from ..models.sampling.solvers import SOLVERS
from ..models.dit.routing import ROUTING_MODES
from . import comfy_bridge
from .dubbing_inputs import timeline_inputs, window_conditions
from .sampler_inputs import clip_encoder_for, conditioning_tensor, fit_reference, penultimate_features
from .sampler_progress import attach_progress

CATEGORY = "MultiTalk/sampling"
logger = logging.getLogger("MultiTalk")
AUTO_SHIFT = {"480p": 7.0, "720p": 11.0}  # the official command line's shifts


def _inputs() -> dict:
    tip = lambda text: {"tooltip": text}  # noqa: E731
    return {
        "required": {
            "model": ("MULTITALK_MODEL", tip("The DiT from MultiTalk Model Loader.")),
            "positive": ("CONDITIONING", tip("Prompt embeddings (MultiTalk Text Encode or native CLIP Text Encode).")),
            "negative": ("CONDITIONING", tip("Negative prompt embeddings.")),
            "clip_vision_output": ("CLIP_VISION_OUTPUT", tip("CLIP vision features of the reference image.")),
            "vae": ("VAE", tip("The Wan2.1 VAE (MultiTalk VAE Loader or native Load VAE).")),
            "image": ("IMAGE", tip("The reference image; fitted to the speaker layout's bucket (resize, centre crop).")),
            "audio": ("MULTITALK_AUDIO", tip("Per-speaker audio features from MultiTalk Audio Encode.")),
            "speakers": ("MULTITALK_SPEAKERS", tip("Who is where, from MultiTalk Speakers (same count as tracks).")),
            "steps": ("INT", {"default": 40, "min": 1, "max": 200, **tip("Sampling steps per window (official: 40).")}),
            "shift": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 30.0, "step": 0.1, **tip(
                "Noise schedule shift; 0 = auto (7 for 480p, 11 for 720p, as the official command line).")}),
            "text_scale": ("FLOAT", {"default": 5.0, "min": 0.0, "max": 20.0, "step": 0.1, **tip(
                "Text guidance. 1 switches to two-pass audio-only guidance (for distilled LoRAs).")}),
            "audio_scale": ("FLOAT", {"default": 4.0, "min": 0.0, "max": 20.0, "step": 0.1, **tip(
                "Audio guidance: higher follows the audio (lips) more strongly.")}),
            "seed": ("INT", {"default": 0, "min": 0, "max": 2**63 - 1, **tip("Noise seed: same seed, same frames.")}),
            "sampler": (list(SOLVERS), {"default": "euler", **tip(
                "euler: the official solver. unipc: second order, similar quality in fewer steps.")}),
            "mode": (list(MODES), {"default": "multitalk", **tip(
                "single: one window. multitalk: chain windows on the last generated frames (official). "
                "infinitetalk: re-anchor every window on the reference image (less drift; InfiniteTalk weights).")}),
            "window_frames": ("INT", {"default": 81, "min": 5, "max": 201, "step": 4, **tip(
                "Frames per window, 4n+1 (the models were trained on 81).")}),
            "motion_frames": ("INT", {"default": 0, "min": 0, "max": 200, **tip(
                "Frames carried between windows; 0 = the mode's default (multitalk 25, infinitetalk 9).")}),
            "color_correction": ("FLOAT", {"default": OFFICIAL_STRENGTH, "min": 0.0, "max": 1.0, "step": 0.05, **tip(
                "Pull each window's colours towards the reference image (Lab mean/std transfer, exact as the "
                "official), against colour drift. 1.0 is the official default in every mode (MultiTalk and "
                "InfiniteTalk command lines); 0 turns it off.")}),
            "max_frames": ("INT", {"default": 0, "min": 0, "max": 100000, **tip(
                "Cap on the video's frames; 0 = as long as the audio.")}),
            "routing": (list(ROUTING_MODES), {"default": "lrope", **tip(
                "How several speakers bind to their tracks. lrope: the paper's L-RoPE (trained for 2). "
                "masked: per-speaker attention gated by each speaker's region (any count).")}),
            "apg": ("BOOLEAN", {"default": False, **tip(
                "Adaptive projected guidance (momentum -0.75, norm threshold 55): fewer artefacts at high scales.")}),
        },
        "optional": {
            "clip_vision": ("CLIP_VISION", tip(
                "Optional CLIP vision model: in multitalk mode each window's CLIP features then come from its "
                "last known frame, as the official pipeline does; without it the reference's are reused.")),
            "batch_guidance": ("BOOLEAN", {"default": True, **tip(
                "Run the guidance passes as one batch (faster); off uses less VRAM.")}),
            "stream_to": ("STRING", {"default": "", **tip(
                "Optional .mp4 path: frames are written there window by window with the soundtrack, so RAM "
                "stays bounded for long videos; the IMAGE output then holds only the last frame.")}),
            "options": ("MULTITALK_SAMPLER_OPTIONS", tip(
                "Optional MultiTalk Sampler Options: few-step presets for distilled LoRAs, a per-step audio "
                "guidance schedule, step caching (TeaCache, MagCache, EasyCache).")),
            **timeline_inputs(),
        },
    }


class MultiTalkSampler:
    DESCRIPTION = ("Generates the talking video: guided flow sampling of the MultiTalk DiT over as many windows "
                   "as the audio needs, each speaker's lips driven by their own track. Progress shows windows x "
                   "steps, VAE chunks and CLIP encodings; Cancel stops within one model pass or one VAE chunk.")
    CATEGORY = CATEGORY
    FUNCTION = "sample"
    RETURN_TYPES = ("IMAGE", "AUDIO", "FLOAT", "STRING")
    RETURN_NAMES = ("frames", "audio", "fps", "video_path")
    OUTPUT_TOOLTIPS = ("The video frames (exactly the audio's length at its fps).",
                       "The mixed soundtrack trimmed to the frames.", "Frames per second (25).",
                       "The streamed mp4 when stream_to is set, else empty.")

    @classmethod
    def INPUT_TYPES(cls):
        return _inputs()

    def sample(self, model, positive, negative, clip_vision_output, vae, image, audio, speakers, steps, shift,
               text_scale, audio_scale, seed, sampler, mode, window_frames, motion_frames, color_correction,
               max_frames, routing, apg, clip_vision=None, batch_guidance=True, stream_to="", options=None,
               **timelines):
        notes, stream_path = [], ""
        if stream_to.strip():  # before any work: never over an input, numbered when it exists, a real container
            stream_path = check_output(stream_to.strip(), kind="video")
            if stream_path != os.path.expanduser(stream_to.strip()):
                notes.append(f"stream_to '{stream_to.strip()}' exists: streaming to '{stream_path}' instead.")
        settings = SamplerSettings(
            steps=steps, shift=shift or AUTO_SHIFT.get(speakers.resolution, 7.0), text_scale=text_scale,
            audio_scale=audio_scale, seed=seed, solver=sampler, apg=apg, mode=mode, window=window_frames,
            motion_frames=motion_frames or default_motion_frames(mode), colour_strength=color_correction,
            max_frames=max_frames, routing=routing, batch_guidance=batch_guidance)
        settings, option_notes = apply_options(settings, options)  # presets, audio schedule, step cache
        notes += option_notes
        validate_settings(settings)  # before the model moves to the device
        inputs = GenerationInputs(
            positive=conditioning_tensor(positive, "positive"), negative=conditioning_tensor(negative, "negative"),
            reference=fit_reference(image, speakers), clip_features=penultimate_features(clip_vision_output),
            audio_features=list(audio.features), masks=speakers.latent_masks())
        inputs.conditions = window_conditions(inputs, speakers, settings, audio, clip_vision, **timelines)
        if getattr(model.model, "fresh_audio_layers", False):
            notes.append("The model's audio layers are untrained (fresh_audio_layers): lips will not follow the "
                         "audio. Load multitalk.safetensors or a trained adapter.")
        dit = model.to_device(*_work_size(settings, speakers))
        try:
            outputs, plan_notes = self._run(dit, vae, inputs, settings, audio, clip_vision, stream_path,
                                            getattr(model, "ensure_loaded", None))
        finally:
            model.release()
        notes += plan_notes
        for note in notes:
            logger.warning("MultiTalkSampler: %s", note)
        return {"ui": comfy_bridge.notes_ui(notes), "result": outputs}

    @staticmethod
    def _run(dit, vae, inputs, settings, audio, clip_vision, stream_to, ensure_loaded=None) -> tuple[tuple, list[str]]:
        """(the node's outputs, the plan's notes)."""
        hooks = Hooks(check_interrupt=_before_step(ensure_loaded), clip_encoder=clip_encoder_for(clip_vision))
        generator = VideoGenerator(dit, vae, inputs, settings, hooks)
        attach_progress(hooks, generator.total_units)  # steps, VAE chunks, CLIP; previews; window counter
        soundtrack = audio.mixed_between(0, generator.plan.output_frames)
        if not stream_to:
            result = generator.run()
            return (result.frames, soundtrack, float(audio.fps), ""), result.notes
        with atomic_write(stream_to) as temporary:  # the file appears, whole, when the last window is written
            sink = StreamSink(temporary, audio.fps, soundtrack)
            hooks.on_frames = sink.write
            try:
                result = generator.run()
            except BaseException:  # Cancel or a failure: release the file so it can be removed
                sink.abort()
                raise
            sink.close()
        return (sink.last_frame, soundtrack, float(audio.fps), stream_to), result.notes


def _work_size(settings: SamplerSettings, speakers) -> tuple[int, int]:
    """(tokens per item, items per forward) of a window: sizes block swap and guidance batching."""
    from ..models.sampling.guidance import guidance_passes

    tokens = ((settings.window - 1) // 4 + 1) * (speakers.height // 16) * (speakers.width // 16)
    return tokens, len(guidance_passes(settings.text_scale)) if settings.batch_guidance else 1


def _before_step(ensure_loaded):
    """Every step: the cancel check, then the DiT back on its device if a model manager moved it
    (e.g. ComfyUI freeing VRAM for a VAE between windows)."""
    def check() -> None:
        comfy_bridge.check_interrupt()
        if ensure_loaded is not None:
            ensure_loaded()
    return check


class StreamSink:
    """Writes frames to an mp4 as windows finish; remembers only the last frame."""

    def __init__(self, path: str, fps: float, soundtrack: dict):
        from ..models.video_io import Mp4Writer

        self.writer = Mp4Writer(path, fps, soundtrack)
        self.last_frame = None

    def write(self, frames: torch.Tensor) -> None:
        self.writer.write(frames)
        self.last_frame = frames[-1:].clone()

    def close(self) -> str:
        return self.writer.close()

    def abort(self) -> None:
        self.writer.abort()


NODE_CLASS_MAPPINGS = {"MultiTalkSampler": MultiTalkSampler}
NODE_DISPLAY_NAME_MAPPINGS = {"MultiTalkSampler": "MultiTalk Sampler"}
