"""`python -m comfyui_multitalk train`: train the audio adapter from a prepared cache, on one
device or, under torchrun, on several (one process per GPU, the adapter sharded with FSDP):

    torchrun --nproc_per_node 8 -m comfyui_multitalk train --model wan_i2v_14B.safetensors \\
        --audio-weights multitalk.safetensors --cache training_cache --output my_adapter --batch-size 1

Every TrainSettings field is an option (--learning-rate, --continuation-share, ...).
"""
from __future__ import annotations

import argparse
import dataclasses
import logging

logger = logging.getLogger(__name__)

_SKIP = {"batch_size"}  # documented separately (it is per process)


def add_train_parser(commands) -> argparse.ArgumentParser:
    from ..models.training.settings import TrainSettings

    train = commands.add_parser("train", help="train the audio adapter on a prepared cache (torchrun for several "
                                "GPUs)", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_argument("--model", required=True, help="the base model file(s) (Wan2.1-I2V-14B)", nargs="+")
    train.add_argument("--audio-weights", default="", help="the audio layers to start from (multitalk.safetensors); "
                       "none: fresh layers")
    train.add_argument("--cache", required=True, help="the cache folder of MultiTalk Prepare Dataset")
    train.add_argument("--output", required=True, help="the adapter to write (.safetensors; also names the resume "
                       "state and logs)")
    train.add_argument("--dtype", default="bf16", help="backbone dtype: bf16, fp16, fp32 or fp8_e4m3fn")
    train.add_argument("--vae", default="", help="the Wan2.1 VAE file, to decode preview clips (--preview-every)")
    train.add_argument("--no-resume", action="store_true", help="start again even when a resume state exists")
    train.add_argument("--batch-size", type=int, default=1, help="windows per micro-batch in each process")
    for field in dataclasses.fields(TrainSettings):
        if field.name in _SKIP:
            continue
        flag = "--" + field.name.replace("_", "-")
        if field.type in ("bool", bool):
            train.add_argument(flag, type=_boolean, default=field.default, metavar="on|off")
        else:
            kind = {"int": int, "float": float}.get(str(field.type), str)
            train.add_argument(flag, type=kind, default=field.default)
    return train


def _boolean(text: str) -> bool:
    value = text.strip().lower()
    if value not in ("on", "off", "true", "false", "1", "0", "yes", "no"):
        raise argparse.ArgumentTypeError(f"'{text}' is not on or off")
    return value in ("on", "true", "1", "yes")


def run_train(args: argparse.Namespace) -> None:
    from ..models.training import TrainSettings
    from ..models.training.distributed import init_from_environment, leave_process_group

    names = {f.name for f in dataclasses.fields(TrainSettings)}
    settings = TrainSettings(**{k: v for k, v in vars(args).items() if k in names})
    if not args.audio_weights:
        settings = dataclasses.replace(settings, fresh_audio_layers=True)
    group, device = init_from_environment()
    try:
        _train_and_report(args, settings, group, device)
    except BaseException:
        leave_process_group(wait=False)
        raise
    # the model and its sharded state were freed on return: the group goes down while nothing holds it
    leave_process_group()


def _train_and_report(args: argparse.Namespace, settings, group, device) -> None:
    from ..models import load_dit
    from ..models.training import AdapterTrainer, load_cache

    sources = list(args.model) + ([args.audio_weights] if args.audio_weights else [])
    model = load_dit(sources, dtype=args.dtype, device=device, require_audio=bool(args.audio_weights))
    vae = None
    if args.vae:
        from ..models.encoders import load_vae

        vae = load_vae(args.vae)
    trainer = AdapterTrainer(model, load_cache(args.cache), settings, args.output, group=group, vae=vae)
    result = trainer.run(resume=not args.no_resume)
    if group.is_main:
        print(f"trained steps {result.start_step + 1}..{len(result.losses)}; last loss "
              f"{result.losses[-1]:.6f}" if result.losses else "nothing to train")
        print(f"adapter: {result.adapter_path}")
        print(f"log: {result.log_path}")
