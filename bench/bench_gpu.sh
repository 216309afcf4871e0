#!/bin/sh
# bench/bench_gpu.sh — GPU throughput of the CUDA backend: prefill and decode
# tokens/s and decode GB/s against the device's peak bandwidth.
#   bench/bench_gpu.sh [model.gguf] [n_prefill] [n_decode]
# Without a model it converts the bundled fixture (tests/fixtures/models/
# cheems-tiny-random; tiny, so the numbers mostly measure launch overhead —
# pass a real model for meaningful GB/s). On a machine without a GPU (or a
# build without nvcc) it prints why and exits 0.
set -e
cd "$(dirname "$0")/.."
make -s -j2 hyquant >/dev/null
if ! ls build/cuda/gpu/*.o >/dev/null 2>&1; then
    echo "no GPU build: nvcc was not found (or NO_CUDA=1); nothing to measure"
    exit 0
fi
MODEL=$1
TMP=${TMPDIR:-/tmp}/hq_bench_gpu.$$
mkdir -p "$TMP"
trap 'rm -rf "$TMP"' EXIT
if [ -z "$MODEL" ]; then
    MODEL=$TMP/cheems-tiny.gguf
    ./hyquant convert tests/fixtures/models/cheems-tiny-random -o "$MODEL" >/dev/null 2>&1
fi
CUDA_LIB=$(dirname "$(command -v ${NVCC:-nvcc})")/../lib64
OBJS=$(ls build/core/*.o build/formats/*.o build/convert/*.o build/quant/*.o build/runtime/*.o build/verify/*.o \
          build/cuda/*.o build/cli/stubs.o build/cuda/gpu/*.o 2>/dev/null)
${CC:-cc} -O2 -std=c11 -D_GNU_SOURCE -fopenmp -I. -o "$TMP/bench_gpu" bench/bench_gpu.c $OBJS \
    $(pkg-config --libs libcjson 2>/dev/null || echo -lcjson) -lz -lm -lpthread \
    -L"$CUDA_LIB" -lcudart_static -ldl -lrt -lstdc++
"$TMP/bench_gpu" "$MODEL" "${2:-512}" "${3:-128}"
