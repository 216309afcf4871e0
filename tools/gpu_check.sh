#!/bin/bash
# tools/gpu_check.sh — the CUDA backend on a real GPU, in one run.
#
#   tools/gpu_check.sh            on a machine with an NVIDIA GPU (writes under $OUT)
#   tools/gpu_check.sh --dry-run  anywhere: check the tools, the dependencies
#                                 and the 1 B generator, build and test nothing
#   tools/gpu_check.sh --quick    steps 1-4 only (build and the device tests,
#                                 ~1.5 min): a kernel change, before the full run
#
# Steps (each timed; a failing step is recorded and the next one still runs):
#   1. machine: nvidia-smi, nvcc, cores;
#   2. dependencies: cJSON and zlib from Debian's packages, or (no registry
#      there) from the .debs in .gpu-deps/ unpacked into a scratch prefix
#      (Makefile DEPS_PREFIX);
#   3. build with nvcc for sm_90 only, -j$(nproc);
#   4. the CUDA op tests and the whole-model CUDA-vs-CPU tests on the device
#      (HQ_TEST_GPU_ONLY=1: the emulator half already runs in `make test`),
#      then the op tests again under compute-sanitizer racecheck;
#   5. models: the bundled cheems-tiny (F32, Q8_0, Q4_K_M) and a generated
#      ~1.07 B-parameter Doge (tools/gen_doge.py, seed 1: d 2048, 16 layers,
#      I 8192, 16/8 heads, vocab 32768) at F16, Q8_0 and Q4_K_M — made while
#      the build runs;
#   6. bench: build/bench_gpu --kernels, then each model (prefill, decode
#      with and without the graph), perplexity CPU vs CUDA, and
#      `verify --backend cuda` against `--backend cpu` (time and agreement).
# Output: $OUT/check.log (everything), $OUT/results.jsonl (one JSON object
# per measurement), $OUT/summary.txt (the table printed last). Exit status:
# the number of failed steps (0 = all passed).
# Prepared for the `device` tool: run it from the repository root with
#   carry .gpu-deps   (apt-get download libcjson1 libcjson-dev zlib1g-dev there)
set -u -o pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DRY=0 QUICK=0
[ "${1:-}" = "--dry-run" ] && DRY=1
[ "${1:-}" = "--quick" ] && QUICK=1
OUT=${OUT:-$ROOT/out/gpu_check}
mkdir -p "$OUT"
LOG=$OUT/check.log
RES=$OUT/results.jsonl
SUM=$OUT/summary.txt
: >"$RES"
: >"$SUM"
exec > >(tee "$LOG") 2>&1
J=$(nproc)
W=${GPU_CHECK_WORK:-/tmp/hq_gpu_check}
mkdir -p "$W"
T0=$(date +%s)
FAILS=0
step() { echo; echo "== [$(($(date +%s) - T0)) s] $*"; }
fail() { echo "FAILED: $*"; echo "FAILED  $*" >>"$SUM"; FAILS=$((FAILS + 1)); }
ok() { echo "ok      $*" >>"$SUM"; }
jsonl() { grep '^{' | tee -a "$RES" >/dev/null; }

step "machine"
nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.max.sm,clocks.mem,driver_version --format=csv 2>&1 || echo "no nvidia-smi"
command -v nvcc >/dev/null || export PATH=/usr/local/cuda/bin:$PATH
nvcc --version 2>&1 | tail -1 || echo "no nvcc"
echo "cores $J; $(uname -srm)"; gcc --version | head -1
grep -m1 'model name' /proc/cpuinfo
echo "cpu isa: $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|fma|f16c|avx512f|avx512bw|avx512vl|avx512_vnni|avx_vnni|avx512_bf16|amx_tile|amx_int8|amx_bf16)$' | tr '\n' ' ')"
python3 -c "import numpy; print('numpy', numpy.__version__)" 2>&1

step "dependencies"
DEPS=""
if [ -n "${GPU_CHECK_FORCE_DEPS:-}" ] || ! dpkg -s libcjson-dev zlib1g-dev >/dev/null 2>&1; then
    DEPS=$W/deps
    rm -rf "$DEPS" && mkdir -p "$DEPS"
    n=0
    for f in .gpu-deps/*.deb; do
        [ -f "$f" ] || continue
        if command -v dpkg >/dev/null; then dpkg -x "$f" "$DEPS"
        else (cd "$DEPS" && ar p "$ROOT/$f" data.tar.xz | tar xJ); fi && n=$((n + 1))
    done
    if [ -f "$DEPS/usr/include/cjson/cJSON.h" ] && [ -f "$DEPS/usr/include/zlib.h" ]; then
        echo "unpacked $n packages from .gpu-deps into $DEPS"
    else
        fail "dependencies: cJSON/zlib headers missing (carry .gpu-deps: apt-get download libcjson1 libcjson-dev zlib1g-dev)"
    fi
fi
export DEPS_PREFIX=$DEPS
export NVCC_ARCH="-gencode arch=compute_90,code=sm_90"
# another gcc than Debian 12's may warn where ours does not: warnings stay warnings here
MK=(make -j"$J" "WARN=-Wall -Wextra -Wshadow")

GEN=(python3 tools/gen_doge.py "$W/doge1b" --seed 1 ${GPU_CHECK_GEN_ARGS:-})  # GPU_CHECK_GEN_ARGS: a smaller model for a trial run
if [ $DRY = 1 ]; then
    step "dry run: generator"
    "${GEN[@]}" --dry-run || fail "gen_doge --dry-run"
    "${MK[@]}" -n hyquant build/bench_gpu >/dev/null && ok "make -n (DEPS_PREFIX=$DEPS_PREFIX)" || fail "make -n"
    cat "$SUM"
    exit $FAILS
fi

# the 1 B model is made on the side while the build runs (numpy, one core)
GEN_PID=
if [ $QUICK = 0 ]; then
    step "models: generating the 1 B Doge in the background"
    ("${GEN[@]}" >"$W/gen.log" 2>&1; echo $? >"$W/gen.rc") &
    GEN_PID=$!
fi

step "build (sm_90, -j$J)"
rm -rf build hyquant
if "${MK[@]}" hyquant build/tests/test_cuda_ops build/tests/test_cuda_model build/tests/test_cuda_emu build/bench_gpu \
        build/tests/test_cpu build/tests/test_quant build/tests/test_ops build/tests/test_gemm_q \
        >"$W/build.log" 2>&1; then
    ok "build ($(($(date +%s) - T0)) s since start)"
else
    tail -40 "$W/build.log"
    fail "build"
    [ -n "$GEN_PID" ] && wait $GEN_PID
    cat "$SUM"
    exit $FAILS
fi
grep -E "Function properties|Used [0-9]+ registers" "$W/build.log" | paste - - | awk '{print}' | head -80 >"$OUT/ptxas.txt"

step "tests on the device"
export HQ_TEST_GPU_ONLY=1
for t in test_cuda_emu test_cuda_ops test_cuda_model; do
    s=$(date +%s)
    out=$(timeout 300 build/tests/$t 2>&1); rc=$?
    echo "$out" | grep -v "^quantize:" | tail -25
    line=$(echo "$out" | grep -E '^[0-9]+ passed' | tail -1)
    echo "{\"test\": \"$t\", \"rc\": $rc, \"result\": \"$line\", \"s\": $(($(date +%s) - s))}" >>"$RES"
    # the op and model tests must have run their GPU half (test_cuda_emu is the emulator's own check)
    if [ $rc = 0 ] && { [ $t = test_cuda_emu ] || ! echo "$out" | grep -q "^skip gpu"; }; then ok "$t: $line"
    else fail "$t (rc $rc): $line"; fi
done
if command -v compute-sanitizer >/dev/null; then
    s=$(date +%s)
    out=$(timeout 240 compute-sanitizer --tool racecheck --print-limit 20 build/tests/test_cuda_ops 2>&1); rc=$?
    echo "$out" | tail -15
    summ=$(echo "$out" | grep -E "RACECHECK SUMMARY|ERROR SUMMARY" | tail -1)
    echo "{\"test\": \"racecheck test_cuda_ops\", \"rc\": $rc, \"result\": \"$summ\", \"s\": $(($(date +%s) - s))}" >>"$RES"
    if [ $rc = 0 ] && echo "$summ" | grep -q " 0 hazards displayed (0 errors, 0 warnings)"; then ok "racecheck: $summ"
    else fail "racecheck (rc $rc): $summ"; fi
else
    echo "no compute-sanitizer on this machine"
fi
unset HQ_TEST_GPU_ONLY

# the host's CPU differs from the development machines (here: a Xeon with
# AVX-512 VNNI/BF16 and AMX): the CPU kernel tests at every level it has
step "CPU kernel tests on this host ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2))"
build/hyquant --version 2>/dev/null || ./hyquant --version
for t in test_cpu test_quant test_ops test_gemm_q; do
    s=$(date +%s)
    out=$(timeout 300 build/tests/$t 2>&1); rc=$?
    echo "$out" | grep -iE 'level|exercised|avx|amx|vnni' | head -8
    line=$(echo "$out" | grep -E '^[0-9]+ passed' | tail -1)
    echo "{\"test\": \"cpu $t\", \"rc\": $rc, \"result\": \"$line\", \"s\": $(($(date +%s) - s))}" >>"$RES"
    if [ $rc = 0 ]; then ok "cpu $t: $line"; else fail "cpu $t (rc $rc): $line"; fi
done
if [ $QUICK = 1 ]; then
    step "summary, quick run ($(($(date +%s) - T0)) s)"
    cat "$SUM"
    exit $FAILS
fi

step "models"
HQ=./hyquant
$HQ convert models/cheems-tiny -o "$W/tiny-f32.gguf" -q --outtype f32 &&
    $HQ quantize "$W/tiny-f32.gguf" "$W/tiny-q8_0.gguf" -t Q8_0 -q >/dev/null &&
    $HQ quantize "$W/tiny-f32.gguf" "$W/tiny-q4_k_m.gguf" -t Q4_K_M -q >/dev/null && ok "bundled model: F32, Q8_0, Q4_K_M" ||
    fail "bundled model conversion"
wait $GEN_PID
cat "$W/gen.log"
if [ "$(cat "$W/gen.rc" 2>/dev/null)" = 0 ] &&
    $HQ convert "$W/doge1b" -o "$W/1b-f16.gguf" -q &&
    $HQ quantize "$W/1b-f16.gguf" "$W/1b-q8_0.gguf" -t Q8_0 -q >/dev/null &&
    $HQ quantize "$W/1b-f16.gguf" "$W/1b-q4_k_m.gguf" -t Q4_K_M -q >/dev/null; then
    rm -rf "$W/doge1b"
    ls -la "$W"/1b-*.gguf
    ok "1 B Doge: F16, Q8_0, Q4_K_M ($(($(date +%s) - T0)) s since start)"
else
    fail "1 B Doge generation/conversion"
fi

step "bench: kernels"
timeout 120 build/bench_gpu --kernels | tee "$W/kern.txt" | grep -v '^{'
jsonl <"$W/kern.txt"
grep -q '"kernel"' "$W/kern.txt" && ok "kernel bench" || fail "kernel bench"

step "bench: models"
for m in tiny-f32:256 tiny-q8_0:256 tiny-q4_k_m:256 1b-f16:512 1b-q8_0:512 1b-q4_k_m:512; do
    f=$W/${m%%:*}.gguf
    [ -f "$f" ] || continue
    timeout 120 build/bench_gpu "$f" "${m##*:}" 128 >"$W/b.txt" 2>&1
    rc=$?
    grep -v '^{' "$W/b.txt"
    jsonl <"$W/b.txt"
    [ $rc = 0 ] && ok "bench ${m%%:*}" || fail "bench ${m%%:*} (rc $rc)"
done

step "perplexity and verify: CUDA against CPU"
# name model text ctx chunks
pv() {
    local name=$1 base=$2 quant=$3 ctx=$4 chunks=$5
    [ -f "$base" ] && [ -f "$quant" ] || return
    for be in cpu cuda; do
        s=$(date +%s.%N)
        ppl=$(timeout 200 $HQ perplexity "$base" --text data/eval.txt --ctx "$ctx" --chunks "$chunks" --backend $be -q 2>&1 |
              grep -E "^PPL" | tail -1)
        e=$(date +%s.%N)
        echo "$name perplexity [$be]: $ppl ($(awk -v a="$s" -v b="$e" 'BEGIN{printf "%.2f", b-a}') s)"
        echo "{\"check\": \"perplexity\", \"model\": \"$name\", \"backend\": \"$be\", \"ctx\": $ctx, \"chunks\": $chunks, \"ppl\": \"$ppl\", \"s\": $(awk -v a="$s" -v b="$e" 'BEGIN{printf "%.3f", b-a}')}" >>"$RES"
        s=$(date +%s.%N)
        timeout 200 $HQ verify "$base" "$quant" --text data/eval.txt --ctx "$ctx" --chunks "$chunks" --backend $be -q \
            --json "$W/v-$name-$be.json" >"$W/v.txt" 2>&1
        rc=$?
        e=$(date +%s.%N)
        secs=$(awk -v a="$s" -v b="$e" 'BEGIN{printf "%.3f", b-a}')
        grep -E "PPL|KLD|top-1|note" "$W/v.txt" | head -6 | sed "s/^/  $name verify [$be]: /"
        python3 -c 'import json, sys
p, name, be, secs, rc = sys.argv[1:]
try: j = json.load(open(p))
except Exception as e: j = {"error": str(e)}
print(json.dumps({"check": "verify", "model": name, "backend": be, "rc": int(rc), "s": float(secs), "report": j}))' \
            "$W/v-$name-$be.json" "$name" "$be" "$secs" "$rc" >>"$RES"
        [ $rc = 0 ] && ok "verify $name [$be] ${secs} s" || fail "verify $name [$be] (rc $rc)"
    done
}
pv tiny "$W/tiny-f32.gguf" "$W/tiny-q4_k_m.gguf" 256 8
pv 1b "$W/1b-f16.gguf" "$W/1b-q4_k_m.gguf" 512 2

step "profile: kernel times of a one-token forward (ncu)"
# prefill of 1 token + 1 decode step per run of bench_gpu (several forwards):
# the per-kernel sums show where a decode step's time goes
if command -v ncu >/dev/null; then
    for m in 1b-f16 1b-q4_k_m; do
        [ -f "$W/$m.gguf" ] || continue
        timeout 150 ncu --clock-control none --metrics gpu__time_duration.sum --csv --launch-count 700 \
            build/bench_gpu "$W/$m.gguf" 1 1 >"$W/ncu-$m.csv" 2>"$W/ncu-$m.err"
        python3 - "$W/ncu-$m.csv" "$m" "$RES" <<'PY'
import csv, json, sys
tot, cnt = {}, {}
out = {"profile": "ncu", "model": sys.argv[2], "kernels": 0, "total_us": 0.0, "top": []}
try:
    rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 10]
    hdr = rows[0]
    ki, ui, vi = hdr.index("Kernel Name"), hdr.index("Metric Unit"), hdr.index("Metric Value")
    for r in rows[1:]:
        v, u = float(r[vi].replace(",", "")), r[ui]
        us = v / 1000 if u in ("nsecond", "ns") else v * 1000 if u in ("msecond", "ms") else v
        k = r[ki].split("(")[0]
        tot[k] = tot.get(k, 0) + us
        cnt[k] = cnt.get(k, 0) + 1
    top = sorted(tot.items(), key=lambda x: -x[1])[:14]
    out.update(kernels=sum(cnt.values()), total_us=round(sum(tot.values()), 1),
               top=[[k, round(v, 1), cnt[k]] for k, v in top])
except Exception as e:
    out["error"] = str(e)
open(sys.argv[3], "a").write(json.dumps(out) + "\n")
print(f"{out['model']}: {out['kernels']} kernels, {out['total_us']:.0f} us {out.get('error', '')}")
for k, v, c in out["top"]:
    print(f"   {v:9.1f} us  x{c:4d}  {k}")
PY
        tail -3 "$W/ncu-$m.err"
    done
else
    echo "no ncu"
fi

step "summary ($(($(date +%s) - T0)) s)"
python3 - "$RES" <<'PY' | tee -a "$SUM"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
dev = next((r for r in rows if "copy_gbs" in r), {})
print(f"device: {dev.get('device', '?')}  peak {dev.get('peak_gbs', 0):.0f} GB/s (spec), copy {dev.get('copy_gbs', 0):.0f} GB/s")
for r in rows:
    if r.get("kernel"):
        print(f"  matmul {r['type']:7s} 1 tok {r['gbs_1tok']:7.0f} GB/s   512 tok {r['gflops_512tok']:7.0f} GFLOP/s")
peak = dev.get("peak_gbs") or 0
for r in rows:
    if "decode_tok_s" in r:
        print(f"  {r['model'].split('/')[-1]:18s} {r['mib']:8.1f} MiB  prefill {r['prefill_tok_s']:9.1f} tok/s  "
              f"decode {r['decode_tok_s']:8.1f} tok/s (eager {r['decode_eager_tok_s']:7.1f})  "
              f"{r['decode_gbs']:7.1f} GB/s = {100 * r['decode_gbs'] / peak if peak else 0:5.1f}% of peak")
for r in rows:
    if r.get("profile"):
        print(f"  ncu {r['model']}: {r['kernels']} kernels, {r['total_us']:.0f} us: " +
              ", ".join(f"{k} {v:.0f} us x{c}" for k, v, c in r["top"][:6]))
for r in rows:
    if r.get("test"):
        print(f"  {r['test']:28s} rc {r['rc']}  {r['result']}  ({r['s']} s)")
    elif r.get("check") == "perplexity":
        print(f"  perplexity {r['model']:5s} [{r['backend']:4s}] {r['ppl']}  {r['s']:.2f} s")
    elif r.get("check") == "verify":
        j = r.get("report", {})
        st = j.get("settings", {})
        print(f"  verify     {r['model']:5s} [{r['backend']:4s}] ran on {st.get('ran_on')}: {r['s']:.2f} s, "
              f"{st.get('scored_tokens')} tokens, PPL {j.get('ppl', {}).get('base', {}).get('value', 0):.4f} -> "
              f"{j.get('ppl', {}).get('quant', {}).get('value', 0):.4f}, KLD {j.get('kld', {}).get('mean', 0):.6f}, "
              f"top-1 {j.get('top1', {}).get('value', 0):.4f}")
PY
echo "failed steps: $FAILS"
exit $FAILS
