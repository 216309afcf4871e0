#!/usr/bin/env bash
# tests/t_gguf_python.sh — a GGUF written by our writer is read by the
# reference Python reader (gguf-py's GGUFReader) with identical KVs and
# tensor values (tools/gguf_py_check.py). Skips when python3 or the gguf
# package is missing. Env: HQ_BUILD = build dir holding tests/test_gguf.
set -u
cd "$(dirname "$0")/.."
if ! python3 -c "import gguf, numpy" >/dev/null 2>&1; then
  echo "skip: python gguf package not installed"
  echo "0 passed, 0 failed"
  exit 0
fi
bin="${HQ_BUILD:-build}/tests/test_gguf"
if [ ! -x "$bin" ]; then
  echo "FAIL: $bin not built"
  echo "0 passed, 1 failed"
  exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if ! "$bin" --write-sample "$tmp/sample.gguf"; then
  echo "FAIL: $bin --write-sample"
  echo "0 passed, 1 failed"
  exit 1
fi
python3 tools/gguf_py_check.py sample "$tmp/sample.gguf"
