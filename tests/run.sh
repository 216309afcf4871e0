#!/usr/bin/env bash
# tests/run.sh [--smoke] BUILD_DIR HYQUANT [[--smoke] BUILD_DIR2 HYQUANT2 ...]
# Runs every compiled tests/test_* in each build dir and every tests/t_*.sh
# script with HYQUANT pointing at that build's binary; a pair after --smoke
# (a build variant, make test) runs tests/smoke.sh only, with HQ_REF=./hyquant.
# The build dir named by HQ_SANITIZED_DIR (make test: build/asan) runs with
# HQ_SANITIZED=1 and the ASan/UBSan options of make test-asan, so its tests
# shrink their big cases.
# Each test ends with "N passed, N failed"; a test that exits non-zero
# without failures counted is one failure, and so is one that checked nothing
# (0 passed, 0 failed) without saying why. A test that leaves something out
# prints one line per omission, "skip: WHY" or "skip WHAT: WHY" (an optional
# Python package, no GPU, the sanitizer pass); those are counted and listed.
# A missing committed fixture is a failure, never a skip.
# Prints a per-test table, the skips, and the total line last:
# "N passed, N failed, N skipped".
set -u
cd "$(dirname "$0")/.."
# libgomp spins ~300k iterations at every barrier before it sleeps; on a busy
# 2-core machine the spinning threads starve the working one and a test runs
# 3-10x slower (bench/README.md). The test programs and commands get a short
# spin from here.
if [ -z "${OMP_WAIT_POLICY:-}" ] && [ -z "${GOMP_SPINCOUNT:-}" ]; then export GOMP_SPINCOUNT=10000; fi
total_p=0; total_f=0; total_s=0; failed_names=(); skipped=()
SKIP_RE='^skip( [^:]*)?: '
while [ $# -ge 2 ]; do
  smoke=0
  if [ "$1" = --smoke ]; then smoke=1; shift; fi
  bdir=$1; hq=$2; shift 2
  label=$bdir
  san_env=()
  if [ "$bdir" = "${HQ_SANITIZED_DIR:-}" ]; then
    san_env=(HQ_SANITIZED=1 "ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
             "UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}")
  fi
  if [ $smoke = 1 ]; then
    tests=(tests/smoke.sh)
    san_env+=(HQ_REF=./hyquant)
  else
    tests=( $(ls "$bdir"/tests/test_* 2>/dev/null | grep -v '\.d$' | sort) $(ls tests/t_*.sh 2>/dev/null | sort) )
  fi
  for t in "${tests[@]}"; do
    name="$label:$(basename "$t")"
    if [ ! -x "$t" ]; then # a test that silently never runs is worse than a failing one
      echo "FAIL  $name: not executable (git update-index --chmod=+x $t)"; total_f=$((total_f + 1)); failed_names+=("$name")
      continue
    fi
    start=$(date +%s.%N)
    out=$(env ${san_env[@]+"${san_env[@]}"} HYQUANT="$hq" HQ_BUILD="$bdir" "$t" 2>&1); rc=$?
    secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
    line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -n 1)
    skips=$(printf '%s\n' "$out" | grep -E "$SKIP_RE")
    p=0; f=0; s=0
    if [ -n "$line" ]; then
      p=$(echo "$line" | sed -E 's/^([0-9]+) passed.*/\1/')
      f=$(echo "$line" | sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/')
    fi
    if [ -n "$skips" ]; then
      s=$(printf '%s\n' "$skips" | wc -l)
      while IFS= read -r l; do skipped+=("$name: $l"); done <<<"$skips"
    fi
    if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    if [ -n "$line" ] && [ "$p" -eq 0 ] && [ "$f" -eq 0 ] && [ "$s" -eq 0 ]; then
      f=1; line="$line (checked nothing and printed no skip line)"
    fi
    total_p=$((total_p + p)); total_f=$((total_f + f)); total_s=$((total_s + s))
    sk=""; [ "$s" -gt 0 ] && sk=", $s skipped"
    if [ "$f" -ne 0 ]; then
      failed_names+=("$name")
      printf 'FAIL  %-48s %5s s  %s\n' "$name" "$secs" "${line:-exit $rc}$sk"
      printf '%s\n' "$out" | grep -vE '^[0-9]+ passed, [0-9]+ failed' | tail -n 40 | sed 's/^/      /'
    elif [ "$p" -eq 0 ]; then
      printf 'skip  %-48s %5s s  %s\n' "$name" "$secs" "$line$sk"
    else
      printf 'ok    %-48s %5s s  %s\n' "$name" "$secs" "$line$sk"
    fi
  done
done
if [ ${#skipped[@]} -gt 0 ]; then
  echo "skipped:"
  printf '  %s\n' "${skipped[@]}"
fi
[ ${#failed_names[@]} -gt 0 ] && printf 'failed: %s\n' "${failed_names[*]}"
echo "$total_p passed, $total_f failed, $total_s skipped"
[ "$total_f" -eq 0 ]
