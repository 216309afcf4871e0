#!/usr/bin/env bash
# tests/t_paths.sh — what the commands do with the file system and with
# resources, end to end (issue 13; SECURITY.md "Files and paths"). Every case
# runs one command in the work directory $W and checks: the exit status, the
# one stderr line (for failures) and its text, that no file under $W changed
# (content, inode, type) except the ones the case expects to write, that no
# temporary file is left, that /dev/null is still a character device, and,
# where memory is the point, the peak RSS (/usr/bin/time; skipped under ASan).
#  1. outputs: devices written in place (/dev/null ok, /dev/full "disk full"),
#     FIFOs (with and without a reader), directories and block devices
#     refused, an output that is an input (same name, hard link, symlink,
#     file in the input directory) refused for every output option;
#  2. inputs: FIFOs as model / text / imatrix refused without blocking,
#     /proc files, directories and checkpoints where a GGUF is expected;
#  3. embedded files: symlinks out of the checkpoint refused, the Hugging
#     Face cache layout accepted, non-JSON and oversized files refused, the
#     embedded files listed, a missing tokenizer warned about;
#  4. memory: an oversized config.json and an absurd --ctx refused cheaply;
#  5. a model truncated while perplexity reads it: "file changed";
#  6. perplexity --json with hostile characters in paths is valid JSON;
#  7/8. absurd metadata refused by name at load, and by quantize.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh paths # HQ, ok/bad, $T, finish
HQ=$(cd "$(dirname "$HQ")" && pwd)/$(basename "$HQ")
SAN=${HQ_SANITIZED:-}
W=$T/w
mkdir -p "$W"
cp -r tests/fixtures/models/cheems-tiny-random "$W/ck"
head -c 20000 data/eval.txt >"$W/t.txt"
if ! "$HQ" convert "$W/ck" -o "$W/m.gguf" -q 2>"$T/err"; then
    bad "setup convert: $(cat "$T/err")"
    finish
fi
"$HQ" calibrate "$W/m.gguf" --text "$W/t.txt" --ctx 64 --chunks 2 -o "$W/m.imatrix" -q >/dev/null 2>"$T/err" ||
    bad "setup calibrate: $(cat "$T/err")"
mkfifo "$W/fifo"
ln -s m.gguf "$W/m-link.gguf"
ln "$W/m.gguf" "$W/m-hard.gguf"
mkdir "$W/adir"

# state of $W: path, type, size, inode and content hash of every entry
state() {
    (cd "$W" && find . -printf '%p %y %s %i\n' | sort &&
        find . -type f -print0 | sort -z | xargs -0 md5sum)
}
TIME=""
[ -z "$SAN" ] && [ -x /usr/bin/time ] && TIME=/usr/bin/time
if [ -z "$TIME" ]; then
  if [ -n "$SAN" ]; then echo "skip peak-RSS bounds: the sanitizers change memory use"
  else echo "skip peak-RSS bounds: /usr/bin/time not installed"; fi
fi

# run_case NAME WANT_RC NEEDLE MAX_RSS_MB CHANGES -- hyquant args...
#   NEEDLE: text the single stderr line must contain ("" for a success);
#   MAX_RSS_MB: peak RSS bound (0: not checked);
#   CHANGES: space-separated paths under $W the case may create or change.
run_case() {
    local name=$1 want=$2 needle=$3 rss=$4 changes=$5
    shift 6
    local before after rc peak=0 why=""
    before=$(state)
    if [ -n "$TIME" ]; then
        (cd "$W" && timeout 60 "$TIME" -f %M -o "$T/rss" "$HQ" "$@" >"$T/out" 2>"$T/err" </dev/null)
        rc=$?
        peak=$(tail -n 1 "$T/rss" 2>/dev/null || echo 0)
    else
        (cd "$W" && timeout 60 "$HQ" "$@" >"$T/out" 2>"$T/err" </dev/null)
        rc=$?
    fi
    [ "$rc" -eq 124 ] && why="timed out (hang)"
    [ -z "$why" ] && [ "$rc" -ne "$want" ] && why="exit $rc, want $want"
    if [ -z "$why" ] && [ "$want" -ne 0 ]; then
        [ "$(grep -c . "$T/err")" -eq 1 ] || why="$(grep -c . "$T/err") stderr lines, want 1"
        [ -z "$why" ] && ! grep -qF -- "$needle" "$T/err" && why="stderr lacks '$needle'"
    fi
    [ -z "$why" ] && grep -qE 'Sanitizer|runtime error:' "$T/err" && why="sanitizer report"
    after=$(state)
    if [ -z "$why" ]; then
        local diffs
        diffs=$(diff <(echo "$before") <(echo "$after") | sed -n 's/^[<>] //p' |
            awk '{ p = ($1 ~ /^\.\//) ? $1 : $2; print substr(p, 3) }' | sort -u)
        for c in $changes; do diffs=$(echo "$diffs" | grep -vxF "$c"); done
        diffs=$(echo "$diffs" | grep -v '^$')
        [ -n "$diffs" ] && why="changed: $(echo $diffs | head -c 200)"
    fi
    [ -z "$why" ] && find "$W" -name '*.tmp.*' | grep -q . && why="temporary file left"
    [ -z "$why" ] && [ ! -c /dev/null ] && why="/dev/null is no longer a character device"
    [ -z "$why" ] && [ "$rss" -gt 0 ] && [ "$peak" -gt $((rss * 1024)) ] && why="peak RSS $((peak / 1024)) MiB > $rss MiB"
    if [ -n "$why" ]; then bad "$name: $why: $(head -c 300 "$T/err")"; else ok; fi
}

# ---- 1. outputs
run_case "convert -o /dev/null" 0 "" 0 "" -- convert ck -o /dev/null -q
run_case "convert -o /dev/full" 1 "disk full" 0 "" -- convert ck -o /dev/full -q
run_case "calibrate -o /dev/full" 1 "disk full" 0 "" -- calibrate m.gguf --text t.txt --ctx 64 --chunks 1 -o /dev/full -q
run_case "quantize to /dev/null" 0 "" 0 "" -- quantize m.gguf /dev/null --type Q8_0 -q
run_case "output FIFO without reader" 1 "no reader" 0 "" -- convert ck -o fifo -q
(cat "$W/fifo" >"$T/from_fifo") &
reader=$!
run_case "output FIFO with a reader" 0 "" 0 "" -- convert ck -o fifo -q
wait "$reader"
cmp -s "$T/from_fifo" "$W/m.gguf" && ok || bad "convert into a FIFO: bytes differ from the file output"
run_case "output is a directory" 2 "directory" 0 "" -- convert ck -o adir -q
if [ -b /dev/loop0 ] || [ -b /dev/sda ]; then
    blk=$( [ -b /dev/loop0 ] && echo /dev/loop0 || echo /dev/sda)
    run_case "output is a block device" 2 "block device" 0 "" -- convert ck -o "$blk" -q
fi
run_case "output is a char device" 2 "character device" 0 "" -- convert ck -o /dev/urandom -q
# stdout: a pipe is written in place; a file behind the /dev/stdout symlink is
# replaced through the link (the link itself is never renamed over)
(cd "$W" && "$HQ" calibrate m.gguf --text t.txt --ctx 64 --chunks 1 -o /dev/stdout -q 2>"$T/err" | cat >"$T/piped")
[ "${PIPESTATUS[0]}" = 0 ] && [ -s "$T/piped" ] && ok || bad "calibrate -o /dev/stdout into a pipe: $(cat "$T/err")"
(cd "$W" && "$HQ" perplexity m.gguf --text t.txt --ctx 64 --chunks 1 --save-logits /dev/stdout -q 2>"$T/err" | cat >/dev/null)
grep -q 'cannot go to a pipe' "$T/err" && [ "$(grep -c . "$T/err")" -eq 1 ] && ok ||
    bad "--save-logits into a pipe: $(cat "$T/err")"
run_case "--save-logits to /dev/stdout, a file" 0 "" 0 "" -- perplexity m.gguf --text t.txt --ctx 64 --chunks 1 --save-logits /dev/stdout -q
[ -L /dev/stdout ] && [ "$(head -c 8 "$T/out")" = HQLOGITS ] && ok || bad "/dev/stdout replaced, or no logits in the file"
ln -s missing "$W/dangling"
run_case "dangling symlink output" 2 "symlink to a missing file" 0 "" -- convert ck -o dangling -q
# an output that is an input, for every output option
run_case "convert -o file in the checkpoint" 2 "same file as a file in the input directory ck" 0 "" -- convert ck -o ck/model.safetensors -q
run_case "convert -o config.json" 2 "same file as a file in the input directory" 0 "" -- convert ck -o ck/config.json -q
run_case "calibrate -o the model" 2 "same file as the input" 0 "" -- calibrate m.gguf --text t.txt -o m.gguf -q
run_case "calibrate -o the text" 2 "same file as the input" 0 "" -- calibrate m.gguf --text t.txt -o t.txt -q
run_case "quantize onto a hard link" 2 "same file as the input" 0 "" -- quantize m.gguf m-hard.gguf --type Q8_0 -q
run_case "quantize onto a symlink" 2 "same file as the input" 0 "" -- quantize m-link.gguf m.gguf --type Q8_0 -q
run_case "quantize onto the imatrix" 2 "same file as the input" 0 "" -- quantize m.gguf m.imatrix --type Q8_0 --imatrix m.imatrix -q
run_case "perplexity --save-logits the text" 2 "same file as the input" 0 "" -- perplexity m.gguf --text t.txt --save-logits t.txt -q
run_case "perplexity --save-logits the model" 2 "same file as the input" 0 "" -- perplexity m.gguf --text t.txt --save-logits m-link.gguf -q
for o in json report plot; do
    run_case "verify --$o the quantized model" 2 "same file as the input" 0 "" -- verify m.gguf m-hard.gguf --text t.txt --$o m-hard.gguf -q
    run_case "verify --$o the text" 2 "same file as the input" 0 "" -- verify m.gguf m.gguf --text t.txt --$o t.txt -q
done
run_case "verify two outputs, one file" 2 "two outputs" 0 "" -- verify m.gguf m.gguf --text t.txt --json r.out --report r.out -q

# ---- 2. inputs that would block or are not what they claim
run_case "FIFO as the model" 1 "FIFO" 0 "" -- perplexity fifo --text t.txt -q
run_case "FIFO as the text" 1 "FIFO" 0 "" -- perplexity m.gguf --text fifo -q
run_case "FIFO as the calibration text" 1 "FIFO" 0 "" -- calibrate m.gguf --text fifo -o x.imatrix -q
run_case "FIFO as the imatrix" 1 "FIFO" 0 "" -- quantize m.gguf q.gguf --type Q8_0 --imatrix fifo -q
run_case "FIFO as verify's text" 1 "FIFO" 0 "" -- verify m.gguf m.gguf --text fifo -q
run_case "FIFO to inspect" 1 "FIFO" 0 "" -- inspect fifo
run_case "FIFO to convert" 1 "FIFO" 0 "" -- convert fifo -o x.gguf -q
run_case "/dev/zero as the model" 1 "character device" 0 "" -- perplexity /dev/zero --text t.txt -q
run_case "/proc file as the model" 1 "size 0 but the file has content" 0 "" -- quantize /proc/self/status q.gguf --type Q8_0 -q
run_case "/proc file as the text is read" 0 "" 0 "" -- perplexity m.gguf --text /proc/self/stat --ctx 64 -q
run_case "checkpoint dir to perplexity" 2 "hyquant convert" 0 "" -- perplexity ck --text t.txt -q
run_case "safetensors to quantize" 1 "hyquant convert" 0 "" -- quantize ck/model.safetensors q.gguf --type Q8_0 -q
run_case "GGUF to convert" 2 "already a GGUF" 0 "" -- convert m.gguf -o x.gguf -q
: >"$W/empty.txt"
run_case "empty text names the file" 2 "empty.txt" 0 "" -- perplexity m.gguf --text empty.txt -q

# ---- 3. embedded files
mk_ck() { rm -rf "$W/$1" && cp -r "$W/ck" "$W/$1"; }
echo '{"aws_secret_access_key": "do-not-publish"}' >"$T/secret.json"
mk_ck cks
rm "$W/cks/tokenizer.json" && ln -s "$T/secret.json" "$W/cks/tokenizer.json"
run_case "tokenizer.json symlink out of the checkpoint" 1 "outside the checkpoint directory" 0 "" -- convert cks -o x.gguf -q
rm "$W/cks/tokenizer.json" && ln -s "$T/secret.json" "$W/cks/tokenizer_config.json.tmp" &&
    rm "$W/cks/tokenizer_config.json" && mv "$W/cks/tokenizer_config.json.tmp" "$W/cks/tokenizer_config.json"
run_case "tokenizer_config.json symlink out" 1 "outside the checkpoint directory" 0 "" -- convert cks -o x.gguf -q
mk_ck ckin
mkdir "$W/ckin/sub" && mv "$W/ckin/tokenizer.json" "$W/ckin/sub/" && ln -s sub/tokenizer.json "$W/ckin/tokenizer.json"
run_case "symlink inside the checkpoint" 0 "" 0 "x.gguf" -- convert ckin -o x.gguf -q
H=$W/hub/models--org--tiny
mkdir -p "$H/blobs" "$H/snapshots/0123abc"
for f in config.json model.safetensors tokenizer.json tokenizer_config.json; do
    h=$(md5sum "$W/ck/$f" | cut -c1-32)
    cp "$W/ck/$f" "$H/blobs/$h" && ln -s "../../blobs/$h" "$H/snapshots/0123abc/$f"
done
run_case "Hugging Face cache snapshot" 0 "" 0 "x.gguf" -- convert hub/models--org--tiny/snapshots/0123abc -o x.gguf --name ck
grep -q 'embedded config.json, tokenizer.json, tokenizer_config.json' "$T/err" && ok ||
    bad "convert does not list the embedded files: $(cat "$T/err")"
cmp -s "$W/x.gguf" "$W/m.gguf" && ok || bad "HF cache snapshot converts to other bytes than the plain directory"
mk_ck ckj
echo 'not json at all' >"$W/ckj/tokenizer_config.json"
run_case "non-JSON tokenizer_config.json" 1 "not a JSON object" 0 "" -- convert ckj -o x2.gguf -q
mk_ck ckt
rm "$W/ckt/tokenizer.json"
run_case "no tokenizer: a warning" 0 "" 0 "x2.gguf" -- convert ckt -o x2.gguf -q
grep -q 'warning: .*no tokenizer.json' "$T/err" && ok || bad "no warning without a tokenizer: $(cat "$T/err")"

# ---- 4. memory bounded by the work, not by a claim
mk_ck ckbig
{ printf '{"pad": "'; head -c $((5 << 20)) /dev/zero | tr '\0' 'a'; printf '", '; tail -c +2 "$W/ck/config.json"; } >"$W/ckbig/config.json"
run_case "5 MiB config.json" 1 "more than the limit" 60 "" -- convert ckbig -o x3.gguf -q
rm -rf "$W/ckbig" "$W/cks" "$W/ckj" "$W/ckt" "$W/ckin"
run_case "--ctx beyond the model" 2 "trained context" 100 "" -- perplexity m.gguf --text t.txt --ctx 1000000 -q
run_case "--ctx beyond the model (verify)" 2 "trained context" 100 "" -- verify m.gguf m.gguf --text t.txt --ctx 1000000 -q

# ---- 5. a mapped model truncated while it is read
"$HQ" convert models/cheems-tiny -o "$T/big.gguf" --outtype f32 -q 2>/dev/null
if [ -f "$T/big.gguf" ]; then
    for try in 1 2 3; do
        cp "$T/big.gguf" "$T/trunc.gguf"
        (timeout 120 "$HQ" perplexity "$T/trunc.gguf" --text data/eval.txt --ctx 256 -q >/dev/null 2>"$T/bus.err"
            echo $? >"$T/bus.rc") &
        p=$!
        sleep $((try))
        truncate -s 65536 "$T/trunc.gguf"
        wait "$p"
        [ "$(cat "$T/bus.rc")" != 0 ] && break
    done
    if [ "$(cat "$T/bus.rc")" = 1 ] && grep -Eq 'trunc.gguf: (file changed while reading|.*but the file ends at)' "$T/bus.err" &&
        [ "$(grep -c . "$T/bus.err")" -eq 1 ]; then ok; else
        bad "truncated model: rc $(cat "$T/bus.rc"): $(head -c 300 "$T/bus.err")"
    fi
fi

# ---- 6. JSON stays valid with any path
Q="$W/q\"uote\\back"
mkdir -p "$Q" && cp "$W/m.gguf" "$Q/m, \"x\": 1.gguf"
js=$(cd "$W" && "$HQ" perplexity "$Q/m, \"x\": 1.gguf" --text t.txt --ctx 64 --chunks 1 --json -q 2>"$T/err")
if command -v python3 >/dev/null; then
    echo "$js" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["model"].endswith("m, \"x\": 1.gguf") and "x" not in d' &&
        ok || bad "perplexity --json not valid or fields injected: $js"
else
    echo "$js" | grep -qF '"model":"'"${Q//\\/\\\\}" && ok || bad "perplexity --json path not escaped: $js"
fi
rm -rf "$Q"

# ---- 7/8. absurd metadata refused at load by name; quantize never writes what the runtime refuses
mk_ck cke
sed -i 's/"rms_norm_eps": [0-9e.-]*/"rms_norm_eps": 0/' "$W/cke/config.json"
"$HQ" convert "$W/cke" -o "$W/eps0.gguf" -q 2>/dev/null
run_case "eps 0: perplexity" 1 "layer_norm_rms_epsilon is 0" 0 "" -- perplexity eps0.gguf --text t.txt --ctx 64 -q
run_case "eps 0: quantize" 1 "layer_norm_rms_epsilon is 0" 0 "" -- quantize eps0.gguf q.gguf --type Q8_0 -q
mk_ck ckb
sed -i 's/"bos_token_id": [0-9]*/"bos_token_id": 5000/' "$W/ckb/config.json"
# BOS comes from the tokenizer's post-processor when it has one (docs/gguf-schema.md): point it there too
perl -0pi -e 's/"ids": \[\s*0\s*\]/"ids": [5000]/' "$W/ckb/tokenizer.json"
"$HQ" convert "$W/ckb" -o "$W/bos.gguf" -q 2>/dev/null
run_case "bos outside the vocabulary" 1 "bos_token_id 5000 is outside the vocabulary" 0 "" -- generate bos.gguf -p hi -n 2 -q
run_case "bos outside the vocabulary (calibrate)" 1 "bos_token_id 5000" 0 "" -- calibrate bos.gguf --text t.txt -o x.imatrix -q
rm -rf "$W/cke" "$W/ckb"

# ---- 9. say what was done
run_case "gptq without a Hessian" 0 "" 0 "q.gguf" -- quantize m.gguf q.gguf --type Q4_0 --imatrix m.imatrix --method gptq -q
grep -q 'method imatrix (--method gptq, but' "$T/out" && ok || bad "gptq fallback not reported: $(grep method "$T/out")"
grep -q . "$T/err" && bad "quantize with its own model's imatrix warns: $(cat "$T/err")" || ok
"$HQ" convert "$W/ck" -o "$W/f16.gguf" --outtype f16 -q 2>/dev/null
run_case "imatrix of another model" 0 "" 0 "q.gguf" -- quantize f16.gguf q.gguf --type Q4_0 --imatrix m.imatrix -q
grep -q 'warning: m.imatrix was computed on a model with other weights' "$T/err" && ok ||
    bad "no warning for another model's imatrix: $(cat "$T/err")"

[ -c /dev/null ] && [ -L /dev/stdout ] && ok || bad "/dev/null or /dev/stdout changed type"
finish
