"""MultiTalk Sampler: image + per-speaker audio + prompt -> talking video frames of any length."""
from __future__ import annotations

import logging
import os

import torch

from ..models.errors import GenerationInputError
from ..models.output_files import atomic_write, check_output
from ..models.sampling.colour import OFFICIAL_STRENGTH
from ..models.sampling.generate import GenerationInputs, Hooks, VideoGenerator
from ..models.sampling.options import apply_options
from ..models.sampling.settings import SamplerSettings, validate_settings
from ..models.sampling.plan import MODES, default_motion_frames
from ..models.sampling.solvers import SOLVERS
from ..models.dit.routing import ROUTING_MODES
from ..models.anytalker.family import ANYTALKER_FAMILIES, check_audio_fits, model_family
from . import comfy_bridge
from .anytalker_inputs import anytalker_job
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
            "model": ("MULTITALK_MODEL", tip("The DiT from MultiTalk Model Loader: MultiTalk/InfiniteTalk or AnyTalker "
                                             "(the sampler follows the model's family).")),
            "positive": ("CONDITIONING", tip("Prompt embeddings (MultiTalk Text Encode or native CLIP Text Encode).")),
            "negative": ("CONDITIONING", tip("Negative prompt embeddings.")),
            "clip_vision_output": ("CLIP_VISION_OUTPUT", tip(
                "CLIP vision features of the reference image (Speakers' image output, crop none).")),
            "vae": ("VAE", tip("The Wan2.1 VAE (MultiTalk VAE Loader or native Load VAE).")),
            "image": ("IMAGE", tip("The reference image; fitted to the speaker layout's bucket (resize, centre crop). "
                                   "AnyTalker: Speakers' image output (the picture as is).")),
            "audio": ("MULTITALK_AUDIO", tip("Per-speaker audio features from MultiTalk Audio Encode.")),
            "speakers": ("MULTITALK_SPEAKERS", tip("Who is where, from MultiTalk Speakers (same count as tracks).")),
            "steps": ("INT", {"default": 40, "min": 1, "max": 200, **tip(
                "Sampling steps per window (official: MultiTalk 40; AnyTalker 1.3B 40, 14B 20).")}),
            "shift": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 30.0, "step": 0.1, **tip(
                "Noise schedule shift; 0 = auto as the official command lines: MultiTalk 7 at 480p, 11 at 720p; "
                "AnyTalker 3 at 480p, 5 at 720p.")}),
            "text_scale": ("FLOAT", {"default": 5.0, "min": 0.0, "max": 20.0, "step": 0.1, **tip(
                "Text guidance. 1 switches to two-pass audio-only guidance (for distilled LoRAs). AnyTalker: its "
                "one guidance scale (official 4.5; prompt and audio together against negative prompt and silence; "
                "1 = no guidance).")}),
            "audio_scale": ("FLOAT", {"default": 4.0, "min": 0.0, "max": 20.0, "step": 0.1, **tip(
                "Audio guidance: higher follows the audio (lips) more strongly. MultiTalk family only (AnyTalker "
                "guides with text_scale alone).")}),
            "seed": ("INT", {"default": 0, "min": 0, "max": 2**63 - 1, **tip("Noise seed: same seed, same frames.")}),
            "sampler": (list(SOLVERS), {"default": "euler", **tip(
                "euler: the official MultiTalk solver. unipc: second order, similar quality in fewer steps; "
                "AnyTalker's official solver (on its own schedule).")}),
            "mode": (list(MODES), {"default": "multitalk", **tip(
                "single: one window. multitalk: chain windows on the last generated frames (official). "
                "infinitetalk: re-anchor every window on the reference image (less drift; InfiniteTalk weights). "
                "AnyTalker: single = the official one pass over the whole audio (memory grows with length); "
                "multitalk / infinitetalk = the pack's windowed long video.")}),
            "window_frames": ("INT", {"default": 81, "min": 5, "max": 201, "step": 4, **tip(
                "Frames per window, 4n+1 (the models were trained on 81). Not used by AnyTalker's single mode "
                "(the whole clip).")}),
            "motion_frames": ("INT", {"default": 0, "min": 0, "max": 200, **tip(
                "Frames carried between windows; 0 = the mode's default (multitalk 25, infinitetalk 9).")}),
            "color_correction": ("FLOAT", {"default": OFFICIAL_STRENGTH, "min": 0.0, "max": 1.0, "step": 0.05, **tip(
                "Pull each window's colours towards the reference image (Lab mean/std transfer, exact as the "
                "official), against colour drift. 1.0 is the official default in every mode (MultiTalk and "
                "InfiniteTalk command lines); 0 turns it off. AnyTalker's official pipeline has none: 0 for its "
                "official output.")}),
            "max_frames": ("INT", {"default": 0, "min": 0, "max": 100000, **tip(
                "Cap on the video's frames; 0 = as long as the audio.")}),
            "routing": (list(ROUTING_MODES), {"default": "lrope", **tip(
                "How several speakers bind to their tracks. lrope: the paper's L-RoPE (trained for 2). "
                "masked: per-speaker attention gated by each speaker's region (any count). MultiTalk family only: "
                "AnyTalker binds each track to its face.")}),
            "apg": ("BOOLEAN", {"default": False, **tip(
                "Adaptive projected guidance (momentum -0.75, norm threshold 55): fewer artefacts at high scales.")}),
        },
        "optional": _optional_inputs(),
    }


def _optional_inputs() -> dict:
    tip = lambda text: {"tooltip": text}  # noqa: E731
    return {
        "clip_vision": ("CLIP_VISION", tip(
            "Optional CLIP vision model: in multitalk mode each window's CLIP features then come from its "
            "last known frame, as the official pipeline does; without it the reference's are reused. "
            "Required for AnyTalker, which encodes every face crop with it.")),
        "batch_guidance": ("BOOLEAN", {"default": True, **tip(
            "Run the guidance passes as one batch (faster); off uses less VRAM.")}),
        "stream_to": ("STRING", {"default": "", **tip(
            "Optional .mp4 path: frames are written there window by window with the soundtrack, so RAM "
            "stays bounded for long videos; the IMAGE output then holds only the last frame.")}),
        "options": ("MULTITALK_SAMPLER_OPTIONS", tip(
            "Optional MultiTalk Sampler Options: few-step presets for distilled LoRAs, a per-step audio "
            "guidance schedule, step caching (TeaCache, MagCache, EasyCache). MultiTalk family only.")),
        **timeline_inputs(),
    }


class MultiTalkSampler:
    DESCRIPTION = ("Generates the talking video: guided flow sampling of the MultiTalk DiT over as many windows "
                   "as the audio needs, each speaker's lips driven by their own track. Progress shows windows x "
                   "steps, VAE chunks and CLIP encodings; Cancel stops within one model pass or one VAE chunk. "
                   "With an AnyTalker model it runs AnyTalker's conditions, guidance and schedule (one pass, or "
                   "windows as the pack's extension).")
    CATEGORY = CATEGORY
    FUNCTION = "sample"
    RETURN_TYPES = ("IMAGE", "AUDIO", "FLOAT", "STRING")
    RETURN_NAMES = ("frames", "audio", "fps", "video_path")
    OUTPUT_TOOLTIPS = ("The video frames (exactly the audio's length at its fps).",
                       "The mixed soundtrack trimmed to the frames.",
                       "Frames per second: the audio's (MultiTalk 25; AnyTalker 24, not the official 16 quirk).",
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
        family = model_family(model.model)
        check_audio_fits(family, getattr(audio, "family", "multitalk"))  # the other family's wav2vec: say which
        if family in ANYTALKER_FAMILIES:
            if options is not None:  # presets and caches are made for the Wan/MultiTalk DiT
                raise GenerationInputError("MultiTalk Sampler Options (few-step presets, step caches) work with "
                                           "MultiTalk and InfiniteTalk models, not AnyTalker: disconnect the "
                                           "options input.")
            values = dict(positive=positive, negative=negative, clip_vision_output=clip_vision_output, image=image,
                          steps=steps, shift=shift, text_scale=text_scale, audio_scale=audio_scale, seed=seed,
                          sampler=sampler, mode=mode, window_frames=window_frames, motion_frames=motion_frames,
                          color_correction=color_correction, max_frames=max_frames, apg=apg,
                          batch_guidance=batch_guidance)
            settings, inputs, make, family_notes = anytalker_job(values, speakers, audio, clip_vision, timelines)
            validate_settings(settings)
            notes += family_notes
            return self._finish(model, vae, inputs, settings, audio, clip_vision, stream_path, notes, speakers,
                                make)
        inputs = GenerationInputs(
            positive=conditioning_tensor(positive, "positive"), negative=conditioning_tensor(negative, "negative"),
            reference=fit_reference(image, speakers), clip_features=penultimate_features(clip_vision_output),
            audio_features=list(audio.features), masks=speakers.latent_masks())
        inputs.conditions = window_conditions(inputs, speakers, settings, audio, clip_vision, **timelines)
        if getattr(model.model, "fresh_audio_layers", False):
            notes.append("The model's audio layers are untrained (fresh_audio_layers): lips will not follow the "
                         "audio. Load multitalk.safetensors or a trained adapter.")
        return self._finish(model, vae, inputs, settings, audio, clip_vision, stream_path, notes, speakers)

    def _finish(self, model, vae, inputs, settings, audio, clip_vision, stream_path, notes, speakers,
                make=VideoGenerator):
        dit = model.to_device(*_work_size(settings, speakers))
        try:
            outputs, plan_notes = self._run(dit, vae, inputs, settings, audio, clip_vision, stream_path, make,
                                            getattr(model, "ensure_loaded", None))
        finally:
            model.release()
        notes += plan_notes
        for note in notes:
            logger.warning("MultiTalkSampler: %s", note)
        return {"ui": comfy_bridge.notes_ui(notes), "result": outputs}

    @staticmethod
    def _run(dit, vae, inputs, settings, audio, clip_vision, stream_to, make=VideoGenerator,
             ensure_loaded=None) -> tuple[tuple, list[str]]:
        """(the node's outputs, the plan's notes); `make` builds the model family's generator."""
        hooks = Hooks(check_interrupt=_before_step(ensure_loaded), clip_encoder=clip_encoder_for(clip_vision))
        generator = make(dit, vae, inputs, settings, hooks)
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
