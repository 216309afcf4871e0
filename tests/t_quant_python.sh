#!/usr/bin/env bash
# tests/t_quant_python.sh — our ggml blocks against gguf-py (Python `gguf`):
# dequantization bit-exact for every type, quantization byte-exact for the
# types gguf-py can quantize. Skips (a "skip:" line, counted by tests/run.sh)
# when Python or gguf is missing.
set -u
cd "$(dirname "$0")/.."
bin="${HQ_BUILD:-build}/tests/test_quant"
if ! command -v python3 >/dev/null 2>&1; then
  echo "skip: python3 not found"; echo "0 passed, 0 failed"; exit 0
fi
if ! python3 -c "import gguf.quants, numpy" >/dev/null 2>&1; then
  echo "skip: Python package gguf (with numpy) not installed"; echo "0 passed, 0 failed"; exit 0
fi
if [ ! -x "$bin" ]; then
  echo "FAIL: $bin not built"; echo "0 passed, 1 failed"; exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if ! "$bin" --dump "$tmp"; then
  echo "FAIL: $bin --dump failed"; echo "0 passed, 1 failed"; exit 1
fi
python3 tools/quant_py_check.py "$tmp"
