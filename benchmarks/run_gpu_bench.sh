#!/usr/bin/env bash
# The GPU benchmark in one device call (see docs/speed.md):
#   run(command="bash benchmarks/run_gpu_bench.sh", carry=[".bench"], timeout_s=480)
# Installs the carried wheels offline into a temporary folder, unpacks the official snapshot, runs
# benchmarks/bench_gpu.py (extra arguments pass through) and keeps its output in $OUT when set.
# TRAIN_PLANS="bf16+park+8bit" (space-separated) then runs benchmarks/bench_training_gpu.py on those
# plans too, TRAIN_TIMEOUT seconds each (default 150); GPU_BENCH=0 leaves bench_gpu.py out, e.g. for a
# second call while the machine is still warm:
#   GPU_BENCH=0 TRAIN_PLANS=bf16+park+8bit bash benchmarks/run_gpu_bench.sh
set -uo pipefail
cd "$(dirname "$0")/.."
site="$(mktemp -d)"
if compgen -G ".bench/wheels/*.whl" > /dev/null; then
    python3 -m pip install --quiet --no-deps --no-index --target "$site" .bench/wheels/*.whl \
        || echo "note: the carried wheels did not install; VAE or GGUF rows may be skipped"
fi
args=()
if [ -f .bench/multitalk_wan.tar ]; then
    official="$(mktemp -d)"
    tar -xf .bench/multitalk_wan.tar -C "$official" && args+=(--official "$official")
fi
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,power.limit --format=csv,noheader 2>/dev/null || true
if [ "${GPU_BENCH:-1}" != 0 ]; then
    PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}" python3 -u benchmarks/bench_gpu.py "${args[@]}" "$@" 2>&1 \
        | tee "${OUT:-/tmp}/bench_gpu.txt"
fi
if [ -n "${TRAIN_PLANS:-}" ]; then
    # shellcheck disable=SC2086  # the plans are words
    PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}" python3 -u benchmarks/bench_training_gpu.py --plans $TRAIN_PLANS \
        --config "${TRAIN_CONFIG:-14b}" --timeout "${TRAIN_TIMEOUT:-150}" 2>&1 | tee "${OUT:-/tmp}/bench_training_gpu.txt"
fi
