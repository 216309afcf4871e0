#!/usr/bin/env bash
# tests/run.sh BUILD_DIR HYQUANT [BUILD_DIR2 HYQUANT2 ...]
# Runs every compiled tests/test_* in each build dir and every tests/t_*.sh
# script with HYQUANT pointing at that build's binary. The build dir named by
# HQ_SANITIZED_DIR (make test: build/asan) runs with HQ_SANITIZED=1 and the
# ASan/UBSan options of make test-asan, so its tests shrink their big cases.
# Each test ends with "N passed, N failed"; a test that exits non-zero
# without failures counted is one failure. Prints a per-test table and the
# total line last.
set -u
cd "$(dirname "$0")/.."
# libgomp spins ~300k iterations at every barrier before it sleeps; on a busy
# 2-core machine the spinning threads starve the working one and a test runs
# 3-10x slower (cli/cmd_common.c). The commands re-exec themselves with a
# short spin; the test programs get the same setting from here.
if [ -z "${OMP_WAIT_POLICY:-}" ] && [ -z "${GOMP_SPINCOUNT:-}" ]; then export GOMP_SPINCOUNT=10000; fi
total_p=0; total_f=0; failed_names=()
while [ $# -ge 2 ]; do
  bdir=$1; hq=$2; shift 2
  label=$bdir
  san_env=()
  if [ "$bdir" = "${HQ_SANITIZED_DIR:-}" ]; then
    san_env=(HQ_SANITIZED=1 "ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
             "UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}")
  fi
  tests=( $(ls "$bdir"/tests/test_* 2>/dev/null | grep -v '\.d$' | sort) $(ls tests/t_*.sh 2>/dev/null | sort) )
  for t in "${tests[@]}"; do
    [ -x "$t" ] || continue
    name="$label:$(basename "$t")"
    start=$(date +%s.%N)
    out=$(env ${san_env[@]+"${san_env[@]}"} HYQUANT="$hq" HQ_BUILD="$bdir" "$t" 2>&1); rc=$?
    secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
    line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -n 1)
    p=0; f=0
    if [ -n "$line" ]; then
      p=$(echo "$line" | sed -E 's/^([0-9]+) passed.*/\1/')
      f=$(echo "$line" | sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/')
    fi
    if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    total_p=$((total_p + p)); total_f=$((total_f + f))
    if [ "$f" -ne 0 ]; then
      failed_names+=("$name")
      printf 'FAIL  %-48s %5s s  %s\n' "$name" "$secs" "${line:-exit $rc}"
      printf '%s\n' "$out" | grep -vE '^[0-9]+ passed, [0-9]+ failed' | tail -n 40 | sed 's/^/      /'
    else
      printf 'ok    %-48s %5s s  %s\n' "$name" "$secs" "$line"
    fi
  done
done
[ ${#failed_names[@]} -gt 0 ] && printf 'failed: %s\n' "${failed_names[*]}"
echo "$total_p passed, $total_f failed"
[ "$total_f" -eq 0 ]
