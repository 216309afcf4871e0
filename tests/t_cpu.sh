#!/usr/bin/env bash
# tests/t_cpu.sh — the HQ_CPU switch (core/cpu.h) as a user meets it: a bad
# value is refused before any command runs, each level caps what
# `hyquant --version` reports and what test_cpu exercises, and the
# deprecated HQ_NO_SIMD / HQ_NO_AVX2 still mean scalar (with a note).
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh cpu # HQ, ok/bad, $T, finish
B=${HQ_BUILD:-build}

HQ_CPU=sse9 expect_fail "HQ_CPU=sse9" 2 "HQ_CPU must be scalar, avx2 or avx512" -- --version
hw=$(env -u HQ_CPU "$HQ" --version | sed -n 's/^cpu: .*(hw \([a-z0-9]*\).*/\1/p')
[ -n "$hw" ] && ok || bad "--version prints no 'cpu: ... (hw LEVEL' line"
rank() { case $1 in scalar) echo 0;; avx2) echo 1;; avx512) echo 2;; *) echo 9;; esac; }
for l in scalar avx2 avx512; do
  want=$l; [ "$(rank "$l")" -gt "$(rank "$hw")" ] && want=$hw # a cap above the CPU is the CPU
  got=$(HQ_CPU=$l "$HQ" --version | sed -n 's/^cpu: \([a-z0-9]*\).*/\1/p')
  [ "$got" = "$want" ] && ok || bad "HQ_CPU=$l: --version says '$got', want '$want'"
  if [ -x "$B/tests/test_cpu" ]; then
    out=$(HQ_CPU=$l "$B/tests/test_cpu" 2>&1); rc=$?
    [ $rc -eq 0 ] && ok || bad "HQ_CPU=$l test_cpu failed: $(echo "$out" | tail -3)"
    ex=$(echo "$out" | sed -n 's/.*levels exercised: *\([a-z0-9 ]*\);.*/\1/p' | awk '{print $1}')
    [ "$ex" = "$want" ] && ok || bad "HQ_CPU=$l: test_cpu's highest level '$ex', want '$want'"
    echo "HQ_CPU=$l: $(echo "$out" | grep 'levels exercised')"
  fi
done
for a in HQ_NO_SIMD HQ_NO_AVX2; do
  got=$(env -u HQ_CPU "$a=1" "$HQ" --version 2>"$T/err" | sed -n 's/^cpu: \([a-z0-9]*\).*/\1/p')
  [ "$got" = scalar ] && ok || bad "$a=1: level '$got', want scalar"
  grep -q "$a is deprecated, use HQ_CPU=scalar" "$T/err" && ok || bad "$a=1: no deprecation note ($(cat "$T/err"))"
done
finish
