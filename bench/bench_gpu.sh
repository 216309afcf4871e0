#!/bin/sh
# bench/bench_gpu.sh — GPU throughput of the CUDA backend: prefill and decode
# tokens/s and decode GB/s against the device's peak bandwidth.
#   bench/bench_gpu.sh [model.gguf] [n_prefill] [n_decode]
#   bench/bench_gpu.sh --kernels      each matmul kernel alone + copy bandwidth
# Without a model it converts the bundled fixture (tests/fixtures/models/
# cheems-tiny-random; tiny, so the numbers mostly measure launch overhead —
# pass a real model for meaningful GB/s). On a machine without a GPU (or a
# build without nvcc) it prints why and exits 0. Make variables (DEPS_PREFIX,
# NVCC_ARCH, -j) come from the environment (tools/gpu_check.sh sets them).
set -e
cd "$(dirname "$0")/.."
make -s ${HQ_MAKE_J:--j2} hyquant build/bench_gpu >/dev/null
if ! ls build/cuda/gpu/*.o >/dev/null 2>&1; then
    echo "no GPU build: nvcc was not found (or NO_CUDA=1); nothing to measure"
    exit 0
fi
if [ "$1" = "--kernels" ]; then exec build/bench_gpu --kernels; fi
MODEL=$1
TMP=${TMPDIR:-/tmp}/hq_bench_gpu.$$
mkdir -p "$TMP"
trap 'rm -rf "$TMP"' EXIT
if [ -z "$MODEL" ]; then
    MODEL=$TMP/cheems-tiny.gguf
    ./hyquant convert tests/fixtures/models/cheems-tiny-random -o "$MODEL" >/dev/null 2>&1
fi
build/bench_gpu "$MODEL" "${2:-512}" "${3:-128}"
