"""Training nodes: prepare a dataset of clips, then train the audio adapter on it."""
from __future__ import annotations

from ..models.speakers.geometry import RESOLUTIONS
from . import comfy_bridge
from .training_options import TRAIN_OPTIONS, train_options

CATEGORY = "MultiTalk/training"


def _progress(label: str):
    """progress(done, total, message) for models/: a bar created once the total is known."""
    state = {"bar": None, "done": 0}

    def update(done: int, total: int, message: str = "") -> None:
        if state["bar"] is None:
            state["bar"] = comfy_bridge.Progress(total, label)
        state["bar"].update(done - state["done"], message)
        state["done"] = done

    return update


class MultiTalkPrepareDataset:
    DESCRIPTION = ("Encodes a folder of talking clips once into a training cache: each clip (video + "
                   "clip.speakerN.wav per speaker, or the video's own sound for one speaker; clip.txt caption; "
                   "optional clip.maskN.png) is read at 25 fps, bucketed like the sampler's image, cut into "
                   "windows and encoded with the VAE, wav2vec, text encoder and CLIP vision. Unusable clips are "
                   "skipped and listed in the summary.")
    CATEGORY = CATEGORY
    FUNCTION = "prepare"
    RETURN_TYPES = ("STRING", "STRING", "INT")
    RETURN_NAMES = ("cache_folder", "summary", "windows")
    OUTPUT_TOOLTIPS = ("The cache folder, for MultiTalk Train Audio Adapter.",
                       "What was encoded, what was skipped and why, and notes (missing captions, ...).",
                       "Number of training windows in the cache.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "vae": ("VAE", {"tooltip": "The Wan2.1 VAE (this pack's loader or ComfyUI's)."}),
            "wav2vec": ("MULTITALK_WAV2VEC", {"tooltip": "The wav2vec2 encoder from MultiTalk Wav2Vec Loader."}),
            "t5": ("MULTITALK_T5", {"tooltip": "The umt5 text encoder from MultiTalk Text Encoder Loader."}),
            "clip_vision": ("CLIP_VISION", {"tooltip": "CLIP ViT-H/14 vision (encodes each window's first frame)."}),
            "clips_folder": ("STRING", {"default": "", "tooltip": (
                "Folder of clips: talk.mp4 + talk.speaker1.wav (talk.speaker2.wav, ...) or the video's own sound; "
                "talk.txt caption; optional talk.mask1.png per speaker.")}),
            "cache_folder": ("STRING", {"default": "", "tooltip": (
                "Where the encoded windows go (created if needed; windows of an earlier run there are replaced).")}),
            "window_frames": ("INT", {"default": 81, "min": 5, "max": 1001, "step": 4, "tooltip": (
                "Frames per training window at 25 fps (4n+1). 81 is what the released models use.")}),
            "resolution": (list(RESOLUTIONS), {"default": "480p", "tooltip": (
                "Bucket table the frames are resized and centre-cropped to (as the sampler does). 240p/120p are "
                "drafts for quick tests.")}),
            "stride_frames": ("INT", {"default": 0, "min": 0, "max": 10000, "tooltip": (
                "Frames between window starts; 0: one window after the other (no overlap).")}),
            "max_windows_per_clip": ("INT", {"default": 0, "min": 0, "max": 100000, "tooltip": (
                "At most this many windows from each clip; 0: all that fit.")}),
        }, "optional": {
            "require_faces": ("BOOLEAN", {"default": True, "tooltip": (
                "Talking windows need every speaker found as a face in the window's first frame (else the window "
                "is left out as 'no usable face'). Turn off for drawn characters the face detector misses: "
                "then left/right strips are used.")}),
            "max_av_offset_frames": ("INT", {"default": 3, "min": -1, "max": 25, "tooltip": (
                "Leave out windows whose sound is clearly this many frames off the speakers' mouths (a cheap "
                "audio-visual offset estimate); -1: no check.")}),
            "split_shots": ("BOOLEAN", {"default": True, "tooltip": (
                "Find shot cuts (PySceneDetect) so no window straddles a cut.")}),
        }}

    def prepare(self, vae, wav2vec, t5, clip_vision, clips_folder: str, cache_folder: str, window_frames: int,
                resolution: str, stride_frames: int, max_windows_per_clip: int, require_faces: bool = True,
                max_av_offset_frames: int = 3, split_shots: bool = True):
        from ..models.training import DatasetEncoders, PrepareSettings, prepare_dataset

        settings = PrepareSettings(window=int(window_frames), stride=int(stride_frames), resolution=resolution,
                                   max_windows_per_clip=int(max_windows_per_clip), require_faces=bool(require_faces),
                                   max_av_offset=int(max_av_offset_frames), split_shots=bool(split_shots))
        summary = prepare_dataset(clips_folder, cache_folder, DatasetEncoders(vae, wav2vec, t5, clip_vision),
                                  settings, progress=_progress("MultiTalk dataset"),
                                  check_interrupt=comfy_bridge.check_interrupt)
        return (summary.cache_folder, summary.text(), len(summary.windows))


class MultiTalkTrainAudioAdapter:
    DESCRIPTION = ("Trains MultiTalk's audio layers (audio_proj, norm_x, audio_cross_attn) on a prepared cache "
                   "with the backbone frozen, using the flow-matching loss. Saves a file with exactly the keys of "
                   "multitalk.safetensors (load it in MultiTalk Model Loader as the audio weights) plus a resume "
                   "state: cancel any time and run again to continue.")
    CATEGORY = CATEGORY
    FUNCTION = "train"
    OUTPUT_NODE = True
    RETURN_TYPES = ("STRING", "IMAGE", "STRING")
    RETURN_NAMES = ("adapter_path", "loss_curve", "report")
    OUTPUT_TOOLTIPS = ("The saved adapter (.safetensors, released key layout).",
                       "Loss per step (light) and its moving average (dark).",
                       "Steps run, final loss, resume notes and file paths.")

    @classmethod
    def INPUT_TYPES(cls):
        comfy_bridge.register_extra_folders()
        return {"required": {
            "model": ("MULTITALK_MODEL", {"tooltip": (
                "The model to adapt, from MultiTalk Model Loader (left unchanged: training works on copies of "
                "the audio layers).")}),
            "cache_folder": ("STRING", {"default": "", "tooltip": "The cache from MultiTalk Prepare Dataset."}),
            "output_name": ("STRING", {"default": "multitalk_adapter", "tooltip": (
                "File name in models/model_patches (or a full path). Also names the resume state "
                "(<name>.resume.pt) and the checkpoints (<name>_stepN).")}),
            "steps": ("INT", {"default": 2000, "min": 1, "max": 1000000, "tooltip": "Optimizer steps in all."}),
            "learning_rate": ("FLOAT", {"default": 2e-5, "min": 1e-8, "max": 1.0, "step": 1e-6, "round": False,
                                        "tooltip": "AdamW learning rate after the warm-up (the paper's 2e-5)."}),
            "warmup_steps": ("INT", {"default": 100, "min": 0, "max": 100000, "tooltip": (
                "Steps of linear warm-up from 0 to the learning rate.")}),
            "batch_size": ("INT", {"default": 1, "min": 1, "max": 64, "tooltip": (
                "Windows per micro-batch (drawn from windows of the same size and speaker count).")}),
            "grad_accumulation": ("INT", {"default": 1, "min": 1, "max": 1024, "tooltip": (
                "Micro-batches whose gradients add up to one step (effective batch = batch_size x this).")}),
            "zero_audio_share": ("FLOAT", {"default": 0.1, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip": (
                "Share of samples trained as plain image-to-video with zeroed audio (keeps the no-audio "
                "guidance pass meaningful).")}),
            "compose_two_speakers": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip": (
                "Share of one-speaker batches joined side by side into two-speaker samples (left/right), to "
                "teach speaker binding from one-speaker clips.")}),
            "shift": ("FLOAT", {"default": 5.0, "min": 0.1, "max": 30.0, "step": 0.1, "tooltip": (
                "Timestep shift: higher trains noisier timesteps more often (the sampler uses 7 at 480p).")}),
            "seed": ("INT", {"default": 0, "min": 0, "max": 2**63 - 1, "tooltip": (
                "Seed of every random draw: the same seed gives the same losses.")}),
            "gradient_checkpointing": ("BOOLEAN", {"default": True, "tooltip": (
                "Recompute block activations in the backward pass: much less memory, about a third slower.")}),
            "autocast": (["auto", "bf16", "off"], {"default": "auto", "tooltip": (
                "bf16 autocast of the forward pass. auto: on when the model computes in 16 bits.")}),
            "save_every": ("INT", {"default": 500, "min": 0, "max": 1000000, "tooltip": (
                "Write a checkpoint (<name>_stepN) and the resume state every N steps; 0: only at the end.")}),
            "save_dtype": (["bf16", "fp16", "fp32"], {"default": "bf16", "tooltip": "Precision of the saved file."}),
            "resume": ("BOOLEAN", {"default": True, "tooltip": (
                "Continue from <name>.resume.pt when it exists; off: start again (overwriting it).")}),
            "audio_layers": (["continue", "fresh"], {"default": "continue", "tooltip": (
                "continue: fine-tune the model's audio layers; fresh: start from new ones (zero output "
                "projection, so training starts from the backbone's prediction).")}),
        }, "optional": {
            "weight_decay": ("FLOAT", {"default": 0.01, "min": 0.0, "max": 1.0, "step": 0.001, "tooltip": (
                "AdamW weight decay.")}),
            "vae": ("VAE", {"tooltip": "The Wan2.1 VAE, to decode the preview clips (only with preview_every > 0)."}),
            **TRAIN_OPTIONS,
        }}

    def train(self, model, cache_folder: str, output_name: str, steps: int, learning_rate: float,
              warmup_steps: int, batch_size: int, grad_accumulation: int, zero_audio_share: float,
              compose_two_speakers: float, shift: float, seed: int, gradient_checkpointing: bool, autocast: str,
              save_every: int, save_dtype: str, resume: bool, audio_layers: str, weight_decay: float = 0.01,
              vae=None, **options):
        from ..models.training import AdapterTrainer, TrainHooks, TrainSettings, draw_loss_curve, load_cache

        settings = TrainSettings(
            steps=int(steps), learning_rate=float(learning_rate), warmup_steps=int(warmup_steps),
            batch_size=int(batch_size), grad_accumulation=int(grad_accumulation), weight_decay=float(weight_decay),
            zero_audio_share=float(zero_audio_share), compose_share=float(compose_two_speakers), shift=float(shift),
            seed=int(seed), gradient_checkpointing=bool(gradient_checkpointing), autocast=autocast,
            save_every=int(save_every), save_dtype=save_dtype, fresh_audio_layers=audio_layers == "fresh",
            **train_options(options))
        output = comfy_bridge.model_output_path("model_patches", output_name)
        cache = load_cache(cache_folder)
        bar = comfy_bridge.Progress(settings.steps, "MultiTalk training")
        hooks = TrainHooks(progress=bar.update, check_interrupt=comfy_bridge.check_interrupt)
        dit = model.to_device(training=True)
        try:
            result = AdapterTrainer(dit, cache, settings, output, hooks, vae=vae).run(resume=bool(resume))
        finally:
            model.release()
        return (result.adapter_path, draw_loss_curve(result.losses), _report(result, settings))


def _report(result, settings) -> str:
    ran = len(result.losses) - result.start_step
    lines = [f"Trained steps {result.start_step + 1}..{len(result.losses)} of {settings.steps} ({ran} this run)."
             if ran else f"Nothing to do: the resume state is already at step {len(result.losses)}."]
    if result.losses:
        recent = result.losses[-10:]
        lines.append(f"Last loss {result.losses[-1]:.4f}, mean of the last {len(recent)}: "
                     f"{sum(recent) / len(recent):.4f}.")
    if result.grad_norms:
        lines.append(f"Gradient norm (before clipping) last step: {result.grad_norms[-1]:.4g}.")
    if result.val_losses:
        step, value = result.val_losses[-1]
        lines.append(f"Validation loss at step {step}: {value:.4f}.")
    lines += result.notes
    lines += [f"Adapter: {result.adapter_path}", f"Resume state: {result.resume_path}", f"Log: {result.log_path}"]
    lines += [f"Preview: {path}" for path in result.previews[-3:]]
    return "\n".join(lines)


NODE_CLASS_MAPPINGS = {
    "MultiTalkPrepareDataset": MultiTalkPrepareDataset,
    "MultiTalkTrainAudioAdapter": MultiTalkTrainAudioAdapter,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "MultiTalkPrepareDataset": "MultiTalk Prepare Dataset (training)",
    "MultiTalkTrainAudioAdapter": "MultiTalk Train Audio Adapter",
}
