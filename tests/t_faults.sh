#!/usr/bin/env bash
# tests/t_faults.sh — no data loss under faults (SECURITY.md "Fault injection").
#  1. allocation failure at the N-th hq_* allocation (HQ_FAIL_ALLOC_AT=N) during
#     convert, quantize and calibrate, N looped over the run's allocations;
#  2. write failure: a file-size limit (ulimit -f; SIGXFSZ is ignored, so
#     write() fails with EFBIG) during convert, quantize and calibrate;
#  3. SIGINT / SIGTERM in the middle of writing a large convert output;
#  4. concurrent converts / quantizes into one directory (same and different
#     output names) and a reader quantizing a file that converts keep replacing.
# Every failed run must exit 1 with a "hyquant <cmd>: ..." line (no sanitizer
# report), leave an existing output byte-identical and no temporary file; every
# successful run must produce exactly the sequential run's output.
# Env: HYQUANT (binary under test), HQ_SANITIZED=1 (ASan build: fewer points).
set -u
cd "$(dirname "$0")/.."
HQ0=${HYQUANT:-./hyquant}
SAN=${HQ_SANITIZED:-}
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() {
    fail=$((fail + 1))
    echo "FAIL: $*" >&2
}
if [ ! -x "$HQ0" ]; then
    echo "t_faults: $HQ0 not built"
    echo "0 passed, 1 failed"
    exit 1
fi
T=$(mktemp -d /tmp/hq_faults.XXXXXX)
# a private copy: a parallel `make` may relink the shared binary mid-run
cp "$HQ0" "$T/hyquant"
HQ=$T/hyquant
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
    rm -rf "$T"
}
trap cleanup EXIT
FIX=tests/fixtures
SRC=$FIX/convert/cheems_alog      # sharded safetensors + tokenizer, 3 layers
TOKSRC=$FIX/models/cheems-tiny-random  # has a real tokenizer (calibrate)
echo "old output, must survive" >"$T/sentinel"

# The state after a run that must have failed cleanly.
# usage: expect_clean_fail LABEL CMD RC ERRFILE OUT [sentinel|absent]
expect_clean_fail() {
    local label=$1 cmd=$2 rc=$3 errf=$4 out=$5 prior=$6
    local why=""
    if grep -qE 'Sanitizer|runtime error:' "$errf"; then why="sanitizer report"; fi
    [ -z "$why" ] && [ "$rc" -ne 1 ] && why="exit status $rc (want 1)"
    [ -z "$why" ] && ! grep -qE "^hyquant $cmd: " "$errf" && why="no 'hyquant $cmd:' message"
    [ -z "$why" ] && [ "$(grep -c . "$errf")" -lt 1 ] && why="empty stderr"
    if [ -z "$why" ]; then
        if [ "$prior" = sentinel ]; then
            cmp -s "$out" "$T/sentinel" || why="existing output was modified"
        elif [ -e "$out" ]; then
            why="output created by a failed run"
        fi
    fi
    [ -z "$why" ] && compgen -G "$out.tmp.*" >/dev/null && why="temporary file left: $(compgen -G "$out.tmp.*" | head -1)"
    if [ -n "$why" ]; then
        bad "$label: $why"
        sed 's/^/      /' "$errf" | tail -5 >&2
        return 1
    fi
    ok
    return 0
}

# ---- references (sequential, no faults) ----
"$HQ" convert "$SRC" -o "$T/ref_conv.gguf" -q >/dev/null 2>"$T/err" || { bad "reference convert failed"; cat "$T/err" >&2; }
"$HQ" quantize "$T/ref_conv.gguf" "$T/ref_q.gguf" -t Q8_0 -q >/dev/null 2>"$T/err" || { bad "reference quantize failed"; cat "$T/err" >&2; }
"$HQ" convert "$TOKSRC" -o "$T/tok.gguf" -q >/dev/null 2>"$T/err" || { bad "tokenizer model convert failed"; cat "$T/err" >&2; }
head -c 4000 $FIX/tokenizer/prose.txt >"$T/calib.txt"
CAL_ARGS=(--text "$T/calib.txt" --ctx 16 --chunks 2 --threads 1 -q)
"$HQ" calibrate "$T/tok.gguf" "${CAL_ARGS[@]}" -o "$T/ref_im.gguf" >/dev/null 2>"$T/err" || { bad "reference calibrate failed"; cat "$T/err" >&2; }
for f in ref_conv.gguf ref_q.gguf tok.gguf ref_im.gguf; do [ -s "$T/$f" ] && ok || bad "reference $f missing"; done

# ---- 1. allocation failure at N ----
# usage: alloc_loop LABEL CMD MAXN STRIDE REF -- hyquant args (OUT is substituted for @OUT@)
alloc_loop() {
    local label=$1 cmd=$2 maxn=$3 stride=$4 ref=$5
    shift 6
    local out="$T/alloc_out.bin" n=1 fails=0 succ=0 streak=0 lastfail=0
    while [ "$n" -le "$maxn" ]; do
        local args=() a
        for a in "$@"; do args+=("${a//@OUT@/$out}"); done
        cp "$T/sentinel" "$out"
        HQ_FAIL_ALLOC_AT=$n "$HQ" "$cmd" "${args[@]}" >/dev/null 2>"$T/aerr"
        local rc=$?
        if [ "$rc" -eq 0 ] && ! grep -qE 'Sanitizer|runtime error:' "$T/aerr"; then
            # past the run's last allocation (or a tolerated failure): exact output
            if cmp -s "$out" "$ref"; then ok; else bad "$label N=$n: succeeded with a different output"; fi
            succ=$((succ + 1))
            streak=$((streak + 1))
            [ "$streak" -ge 3 ] && break
        else
            streak=0
            expect_clean_fail "$label N=$n" "$cmd" "$rc" "$T/aerr" "$out" sentinel && fails=$((fails + 1))
            lastfail=$n
        fi
        n=$((n + stride))
    done
    rm -f "$out"
    echo "$label: $fails clean failures over allocations 1..$lastfail (stride $stride), $succ successful runs past the end"
    [ "$fails" -gt 0 ] && ok || bad "$label: no allocation failure was exercised"
}
if [ -n "$SAN" ]; then
    CS=1 QS=3 KS=47
else
    CS=1 QS=3 KS=29
fi
alloc_loop "convert alloc" convert 600 $CS "$T/ref_conv.gguf" -- "$SRC" -o @OUT@ -q
alloc_loop "quantize alloc" quantize 1500 $QS "$T/ref_q.gguf" -- "$T/ref_conv.gguf" @OUT@ -t Q8_0 -q
alloc_loop "calibrate alloc" calibrate 6000 $KS "$T/ref_im.gguf" -- "$T/tok.gguf" "${CAL_ARGS[@]}" -o @OUT@

# ---- 2. write failure (file-size limit) ----
# usage: limited KB OUTSTATE LABEL CMD args... (OUT = $T/wout.bin)
limited() {
    local kb=$1 prior=$2 label=$3 cmd=$4
    shift 4
    local out="$T/wout.bin"
    rm -f "$out"
    [ "$prior" = sentinel ] && cp "$T/sentinel" "$out"
    local args=() a
    for a in "$@"; do args+=("${a//@OUT@/$out}"); done
    (ulimit -f "$kb" && exec "$HQ" "$cmd" "${args[@]}") >/dev/null 2>"$T/werr"
    local rc=$?
    expect_clean_fail "$label (ulimit -f $kb, $prior)" "$cmd" "$rc" "$T/werr" "$out" "$prior" &&
        { grep -qiE 'too large|write|space' "$T/werr" && ok || bad "$label: message does not name the write failure: $(head -1 "$T/werr")"; }
    rm -f "$out"
}
for prior in sentinel absent; do
    limited 8 $prior "convert write" convert "$SRC" -o @OUT@ -q
    limited 8 $prior "quantize write" quantize "$T/ref_conv.gguf" @OUT@ -t Q8_0 -q
    limited 16 $prior "calibrate write" calibrate "$T/tok.gguf" "${CAL_ARGS[@]}" -o @OUT@
done
# the limit is the only difference: the same command without it succeeds
(ulimit -f 100000 && exec "$HQ" convert "$SRC" -o "$T/wok.gguf" -q) >/dev/null 2>&1 && cmp -s "$T/wok.gguf" "$T/ref_conv.gguf" &&
    ok || bad "convert under a generous ulimit -f differs from the reference"

# ---- 3. SIGINT / SIGTERM while writing ----
# A big checkpoint (sparse zeros): doge_old_pk's tensors with a large vocabulary,
# so the embedding dominates and writing the output takes long enough to stop.
make_big() {
    local dir=$1 vocab=$2
    mkdir -p "$dir"
    sed -E "s/\"vocab_size\": *[0-9]+/\"vocab_size\": $vocab/" $FIX/convert/doge_old_pk/config.json >"$dir/config.json"
    "$HQ" inspect $FIX/convert/doge_old_pk/model.safetensors | sed -n '/^tensors:/,/^$/p' | tail -n +3 |
        awk -v V="$vocab" '
        NF >= 5 && $4 ~ /^\[/ {
            src = $2; dt = $3; line = $0
            s = substr(line, index(line, "[") + 1); s = substr(s, 1, index(s, "]") - 1)
            n = split(s, dims, /, */)
            if (src == "model.word_embed.weight" || src == "lm_head.weight") dims[1] = V
            ne = 1; shp = ""
            for (i = 1; i <= n; i++) { ne *= dims[i]; shp = shp (i > 1 ? "," : "") dims[i] }
            es = (dt == "F32") ? 4 : 2
            hdr = hdr (cnt++ ? "," : "") sprintf("\"%s\":{\"dtype\":\"%s\",\"shape\":[%s],\"data_offsets\":[%d,%d]}", src, dt, shp, off, off + ne * es)
            off += ne * es
        }
        END { printf "{%s}", hdr > "/dev/stdout"; printf "%d\n", off > "/dev/stderr" }' >"$dir/hdr.json" 2>"$dir/size"
    # pad the header to a multiple of 8 with spaces (as the reference writer)
    local hl pad total
    hl=$(stat -c %s "$dir/hdr.json")
    pad=$(((8 - hl % 8) % 8))
    printf '%*s' $pad '' >>"$dir/hdr.json"
    hl=$((hl + pad))
    total=$((8 + hl + $(cat "$dir/size")))
    {
        local i
        for i in 0 1 2 3 4 5 6 7; do printf "\\$(printf '%03o' $(((hl >> (8 * i)) & 255)))"; done
        cat "$dir/hdr.json"
    } >"$dir/model.safetensors"
    truncate -s "$total" "$dir/model.safetensors"
    rm -f "$dir/hdr.json" "$dir/size"
}
BIG_VOCAB=2000000
[ -n "$SAN" ] && BIG_VOCAB=1000000
make_big "$T/big" $BIG_VOCAB
if "$HQ" inspect "$T/big" >/dev/null 2>"$T/err"; then ok; else
    bad "synthetic big checkpoint does not open"
    head -3 "$T/err" >&2
fi

# usage: interrupt SIG PRIOR — stop convert once its temp file exists, then signal it
interrupt() {
    local sig=$1 prior=$2 out="$T/sig_out.gguf" caught=0 tries
    for tries in 1 2 3; do
        rm -f "$out" "$out".tmp.*
        [ "$prior" = sentinel ] && cp "$T/sentinel" "$out"
        "$HQ" convert "$T/big" -o "$out" --outtype f16 -q >/dev/null 2>"$T/serr" &
        local pid=$!
        pids+=("$pid")
        local t0=$SECONDS
        while kill -0 "$pid" 2>/dev/null && ! compgen -G "$out.tmp.*" >/dev/null && [ $((SECONDS - t0)) -lt 60 ]; do :; done
        kill -STOP "$pid" 2>/dev/null
        if compgen -G "$out.tmp.*" >/dev/null && kill -0 "$pid" 2>/dev/null; then
            # mid-write: the temporary file exists, the output is untouched
            caught=1
            kill "-$sig" "$pid"
            kill -CONT "$pid"
            { wait "$pid"; } 2>/dev/null
            local rc=$?
            local want=$((128 + $(kill -l "$sig")))
            [ "$rc" -eq "$want" ] && ok || bad "SIG$sig ($prior): exit status $rc, want $want (killed by the signal)"
            grep -qE 'Sanitizer|runtime error:' "$T/serr" && bad "SIG$sig: sanitizer report" || ok
            if [ "$prior" = sentinel ]; then
                cmp -s "$out" "$T/sentinel" && ok || bad "SIG$sig: existing output modified"
            else
                [ ! -e "$out" ] && ok || bad "SIG$sig: output created by an interrupted run"
            fi
            compgen -G "$out.tmp.*" >/dev/null && bad "SIG$sig ($prior): temporary file left behind" || ok
            break
        fi
        kill -CONT "$pid" 2>/dev/null
        wait "$pid"
    done
    [ "$caught" -eq 1 ] && ok || bad "SIG$sig ($prior): could not catch convert while writing"
    rm -f "$out" "$out".tmp.*
}
interrupt INT sentinel
interrupt TERM sentinel
interrupt TERM absent
interrupt HUP sentinel
rm -rf "$T/big"

# ---- 4. concurrency ----
C=$T/conc
mkdir -p "$C"
NP=4
[ -n "$SAN" ] && NP=3
cpids=()
for i in $(seq 1 $NP); do
    "$HQ" convert "$SRC" -o "$C/same.gguf" -q >/dev/null 2>"$C/e_cs$i" &
    cpids+=($!)
    "$HQ" convert "$SRC" -o "$C/conv$i.gguf" -q >/dev/null 2>"$C/e_cd$i" &
    cpids+=($!)
    "$HQ" quantize "$T/ref_conv.gguf" "$C/qsame.gguf" -t Q8_0 --threads 1 -q >/dev/null 2>"$C/e_qs$i" &
    cpids+=($!)
    "$HQ" quantize "$T/ref_conv.gguf" "$C/q$i.gguf" -t Q8_0 --threads 1 -q >/dev/null 2>"$C/e_qd$i" &
    cpids+=($!)
done
pids+=("${cpids[@]}")
crc=0
for p in "${cpids[@]}"; do wait "$p" || crc=1; done
[ "$crc" -eq 0 ] && ok || { bad "a concurrent run failed"; cat "$C"/e_* >&2; }
for f in same.gguf $(seq -f 'conv%g.gguf' 1 $NP); do
    cmp -s "$C/$f" "$T/ref_conv.gguf" && ok || bad "concurrent convert $f differs from the sequential run"
    "$HQ" inspect "$C/$f" >/dev/null 2>&1 && ok || bad "concurrent convert $f does not inspect"
done
for f in qsame.gguf $(seq -f 'q%g.gguf' 1 $NP); do
    cmp -s "$C/$f" "$T/ref_q.gguf" && ok || bad "concurrent quantize $f differs from the sequential run"
    "$HQ" inspect "$C/$f" >/dev/null 2>&1 && ok || bad "concurrent quantize $f does not inspect"
done
compgen -G "$C/*.tmp.*" >/dev/null && bad "temporary files left after concurrent runs: $(ls "$C" | grep tmp | head -3)" || ok
# a reader always sees a complete file while writers keep replacing it
cp "$T/ref_conv.gguf" "$C/live.gguf"
(for i in 1 2 3 4 5 6; do "$HQ" convert "$SRC" -o "$C/live.gguf" -q >/dev/null 2>&1; done) &
wpid=$!
pids+=("$wpid")
rfail=0
for i in 1 2 3 4 5 6; do
    "$HQ" quantize "$C/live.gguf" "$C/live_q$i.gguf" -t Q8_0 --threads 1 -q >/dev/null 2>"$C/e_live" || rfail=1
    cmp -s "$C/live_q$i.gguf" "$T/ref_q.gguf" || rfail=1
done
wait "$wpid"
[ "$rfail" -eq 0 ] && ok || { bad "quantize of a file being replaced failed or differed"; cat "$C/e_live" >&2; }
cmp -s "$C/live.gguf" "$T/ref_conv.gguf" && ok || bad "replaced file differs from the reference"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
