#!/usr/bin/env bash
# Prepare what the GPU benchmark carries to a device that cannot download anything (run here, once):
#   .bench/wheels/      diffusers (the Wan VAE), gguf (GGUF layers) and bitsandbytes (the training
#                       benchmark's 8-bit AdamW plans) wheels, installed there offline
#   .bench/multitalk_wan.tar   the official MultiTalk `wan/` package, for the side-by-side forward
# .bench/ is git-ignored: the official code never enters the project.
# Usage: benchmarks/prepare_gpu_bench.sh [MultiTalk git dir, default /work/.mirror/MeiGen-AI+MultiTalk/repo]
set -euo pipefail
cd "$(dirname "$0")/.."
official="${1:-/work/.mirror/MeiGen-AI+MultiTalk/repo}"
mkdir -p .bench/wheels
python3 -m pip download --no-deps --only-binary=:all: -d .bench/wheels \
    "diffusers==$(python3 -c 'import diffusers; print(diffusers.__version__)')" \
    "gguf==$(python3 -c 'import importlib.metadata as m; print(m.version("gguf"))')" \
    "bitsandbytes==$(python3 -c 'import importlib.metadata as m; print(m.version("bitsandbytes"))')"
git -C "$official" archive --format=tar HEAD wan > .bench/multitalk_wan.tar
echo "official snapshot: $(git -C "$official" rev-parse HEAD)" > .bench/SOURCE
ls -la .bench .bench/wheels
