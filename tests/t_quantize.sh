#!/usr/bin/env bash
# tests/t_quantize.sh — the quantize command from the outside: exit codes,
# no output on errors, dry-run size == file size, --json, requantize refusal.
# The synthetic model comes from `test_quantize --write-fixture DIR`.
set -u
HQ=${HYQUANT:-./hyquant}
B=${HQ_BUILD:-build}
pass=0; fail=0
ok() { if eval "$2"; then pass=$((pass+1)); else fail=$((fail+1)); echo "FAIL: $1"; fi; }
T=$(mktemp -d /tmp/hq_t_quantize.XXXXXX)
trap 'rm -rf "$T"' EXIT
if [ ! -x "$B/tests/test_quantize" ]; then echo "FAIL: $B/tests/test_quantize not built"; echo "0 passed, 1 failed"; exit 1; fi
"$B/tests/test_quantize" --write-fixture "$T" || { echo "fixture failed"; echo "0 passed, 1 failed"; exit 1; }

"$HQ" quantize "$T/model.gguf" "$T/x.gguf" --type Q3_XYZ -q 2>"$T/err"; rc=$?
ok "unknown type exits 2" '[ $rc -eq 2 ]'
ok "unknown type names it" 'grep -q "Q3_XYZ" "$T/err"'
ok "unknown type: no output" '[ ! -e "$T/x.gguf" ] && [ $(ls "$T" | wc -l) -eq 3 ]'

"$HQ" quantize "$T/model.gguf" "$T/x.gguf" --type Q4_K_M --tensor-type 'attn_(q=Q8_0' -q 2>"$T/err"; rc=$?
ok "invalid regex exits 2" '[ $rc -eq 2 ] && grep -q "invalid regex" "$T/err" && [ ! -e "$T/x.gguf" ]'
"$HQ" quantize "$T/model.gguf" "$T/x.gguf" --type Q4_K_M --tensor-type 'attn_q=Q7_7' -q 2>/dev/null; rc=$?
ok "invalid override type exits 2" '[ $rc -eq 2 ] && [ ! -e "$T/x.gguf" ]'

"$HQ" quantize "$T/nan.gguf" "$T/x.gguf" --type Q8_0 -q >/dev/null 2>"$T/err"; rc=$?
ok "NaN refused" '[ $rc -eq 1 ] && grep -q "nan.gguf: .*blk.0.ffn_down.weight" "$T/err" && [ ! -e "$T/x.gguf" ]'
ok "NaN: no temp file" '[ -z "$(ls "$T" | grep tmp)" ]'

for ty in Q8_0 Q4_0 Q4_1 Q4_K_M Q4_K_S Q5_K_M Q6_K IQ4_NL Q4_K F16 Q2_K Q3_K_S Q3_K_M Q3_K_L; do
  "$HQ" quantize "$T/model.gguf" "$T/q_$ty.gguf" --type $ty -q >"$T/out_$ty.txt" 2>&1; rc=$?
  ok "$ty quantizes" '[ $rc -eq 0 ]'
  # exact byte count from the JSON dry run against the file on disk
  dry=$("$HQ" quantize "$T/model.gguf" --type $ty --dry-run --json | grep '"out_file_bytes"' | tr -dc 0-9)
  ok "$ty dry-run size == file size" '[ "$dry" = "$(stat -c %s "$T/q_$ty.gguf")" ]'
done

"$HQ" quantize "$T/q_Q8_0.gguf" "$T/x.gguf" --type Q4_K_M -q >/dev/null 2>"$T/err"; rc=$?
ok "requantize refused" '[ $rc -eq 1 ] && grep -q "allow-requantize" "$T/err" && [ ! -e "$T/x.gguf" ]'
"$HQ" quantize "$T/q_Q8_0.gguf" "$T/x.gguf" --type Q4_K_M --allow-requantize -q >/dev/null 2>&1; rc=$?
ok "--allow-requantize" '[ $rc -eq 0 ] && [ -s "$T/x.gguf" ]'

"$HQ" quantize "$T/model.gguf" "$T/model.gguf" --type Q8_0 -q 2>/dev/null; rc=$?
ok "same input/output refused" '[ $rc -eq 2 ]'
"$HQ" quantize "$T/model.gguf" "$T/x2.gguf" --type Q8_0 --method gptq -q 2>/dev/null; rc=$?
ok "gptq without imatrix is a usage error" '[ $rc -eq 2 ] && [ ! -e "$T/x2.gguf" ]'
"$HQ" quantize --help >/dev/null; rc=$?
ok "--help exits 0" '[ $rc -eq 0 ]'
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
