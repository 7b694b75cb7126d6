"""Training MultiTalk's audio adapter on your own clips, with the backbone frozen.

Public API (see docs/training.md):
- prepare_dataset, prepare_clip, find_clips, PrepareSettings, PrepareSummary, DatasetEncoders:
  a folder of clips -> the on-disk cache of encoded windows
- load_cache, check_model_fits, TrainingCache, WindowInfo: reading the cache
- AdapterTrainer, TrainSettings, TrainHooks, TrainResult: the training loop
- FlowDraw, draw_flow, noised_latents, velocity_target, flow_matching_loss: the objective
- TrainableAdapter, checkpointed_blocks: trainable weights and gradient checkpointing
- save_adapter, adapter_paths, draw_loss_curve
"""
from .adapter_params import TrainableAdapter, checkpointed_blocks
from .cache import TrainingCache, WindowInfo, check_model_fits, load_cache
from .checkpoints import adapter_paths, save_adapter
from .clip_folder import ClipSource, find_clips
from .dataset_prep import DatasetEncoders, PrepareSettings, PrepareSummary, prepare_clip, prepare_dataset
from .loss_plot import draw_loss_curve
from .flow import FlowDraw, draw_flow, noised_latents, velocity_target
from .settings import TrainSettings
from .trainer import AdapterTrainer, TrainHooks, TrainResult, flow_matching_loss, shifted_timesteps

__all__ = [
    "AdapterTrainer", "ClipSource", "DatasetEncoders", "FlowDraw", "PrepareSettings", "PrepareSummary", "TrainHooks",
    "draw_flow", "noised_latents", "velocity_target",
    "TrainResult", "TrainSettings", "TrainableAdapter", "TrainingCache", "WindowInfo", "adapter_paths",
    "check_model_fits", "checkpointed_blocks", "draw_loss_curve", "find_clips", "flow_matching_loss",
    "load_cache", "prepare_clip", "prepare_dataset", "save_adapter", "shifted_timesteps",
]
