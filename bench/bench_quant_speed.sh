#!/usr/bin/env bash
# bench/bench_quant_speed.sh — single-core quantize / dequantize / vec_dot
# speed of every quant/ block format (not part of `make test`).
# Columns: params/s of from_float_ref, from_float (fast path), quantize_imatrix
# (NULL weights); GB/s of quantized bytes for to_float and vec_dot.
# Targets: Q8_0/Q4_0 quantize >= 200 M params/s per core, Q4_K >= 50 M.
# Run on an idle machine; HQ_CPU=scalar (or avx2) shows the lower levels (core/cpu.h).
set -eu
cd "$(dirname "$0")/.."
make -s -j2 build/tests/test_quant >/dev/null
if command -v taskset >/dev/null 2>&1; then exec taskset -c 0 build/tests/test_quant --perf; fi
exec build/tests/test_quant --perf
