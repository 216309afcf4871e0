# tests/lib.sh — sourced by tests/t_*.sh from the repository root:
#   . tests/lib.sh NAME
# gives HQ (the binary under test, $HYQUANT or ./hyquant), the counters with
# ok / bad, a temporary directory $T (/tmp/hq_t_NAME.*, removed on exit
# unless KEEP is set), finish (prints the "N passed, N failed" line run.sh
# reads and exits non-zero on a failure) and expect_fail.
HQ=${HYQUANT:-./hyquant}
pass=0; fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
T=$(mktemp -d "/tmp/hq_t_$1.XXXXXX")
trap '[ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
finish() { echo "$pass passed, $fail failed"; [ "$fail" -eq 0 ]; exit; }

# expect_fail NAME WANT_RC NEEDLE -- hyquant args...: the command exits with
# WANT_RC and prints exactly one stderr line, containing NEEDLE
expect_fail() {
  local name=$1 want=$2 needle=$3; shift 4
  "$HQ" "$@" >"$T/stdout" 2>"$T/stderr"; local rc=$?
  local lines; lines=$(grep -c . "$T/stderr")
  if [ "$rc" -ne "$want" ]; then bad "$name: exit $rc, want $want ($(head -c 300 "$T/stderr"))"; return; fi
  if ! grep -q -- "$needle" "$T/stderr"; then bad "$name: stderr lacks '$needle': $(head -c 300 "$T/stderr")"; return; fi
  if [ "$lines" -ne 1 ]; then bad "$name: $lines stderr lines, want 1"; return; fi
  ok
}
