#!/usr/bin/env bash
# Serving benchmark on the GPU machine (issue 15): `marlin serve` on a Llama-2-7B-shaped model with
# random weights made there, dense fp16 vs Marlin 4-bit (group 128), each measured by `marlin bench
# serve` at 1, 8, 32 and inf requests/s (fixed 256-token prompts, 128-token outputs); prints the
# table side by side. Made for ~5 minutes of device time. Run through on-device.sh, which unpacks
# the carried node and built tree (tools/gpu/prepare.sh; --with-model also carries a tokenizer):
#
#   run(carry=[".carry"], command="bash tools/gpu/on-device.sh sh 'bash tools/gpu/serve-bench.sh'")
#
# Knobs (environment), defaults in brackets:
#   DEVICE [cuda]  LAYERS [32]  SHAPE [""] (extra random-model options, e.g. "--hidden-size 256")
#   RATES [1,8,32,inf]  NUM_PROMPTS [32]  INPUT_LEN [256]  OUTPUT_LEN [128]
#   MAX_NUM_SEQS [64]  MAX_MODEL_LEN [2048]  WORK [/tmp/marlin-serve-bench]
#   MARLIN_FROM [random]  random: the Marlin model is drawn directly (random 4-bit weights, seconds);
#                         rtn: `marlin quantize --method rtn` of the fp16 model (a true quantized
#                         copy; on the CPU, many minutes for 7B)
# To $OUT: serve-bench.log (everything printed), serve-dense.json, serve-marlin.json,
# serve-compare.svg, server-dense.log, server-marlin.log (the servers' JSON request logs).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
exec > >(tee "$OUT/serve-bench.log") 2>&1

DEVICE=${DEVICE:-cuda}
LAYERS=${LAYERS:-32}
SHAPE=${SHAPE:-}
RATES=${RATES:-1,8,32,inf}
NUM_PROMPTS=${NUM_PROMPTS:-32}
INPUT_LEN=${INPUT_LEN:-256}
OUTPUT_LEN=${OUTPUT_LEN:-128}
MAX_NUM_SEQS=${MAX_NUM_SEQS:-64}
MAX_MODEL_LEN=${MAX_MODEL_LEN:-2048}
MARLIN_FROM=${MARLIN_FROM:-random}
WORK=${WORK:-/tmp/marlin-serve-bench}
marlin=(node "$root/apps/cli/dist/main.js")
tok=()
[ -n "${MARLIN_FIXTURE_DIR:-}" ] && [ -f "$MARLIN_FIXTURE_DIR/tokenizer.json" ] && tok=(--tokenizer-from "$MARLIN_FIXTURE_DIR")

t0=$(date +%s)
phase() { echo "== [$(($(date +%s) - t0)) s] $*"; }
fail() { echo "serve-bench: $*" >&2; exit 1; }

test -f "$root/apps/cli/dist/main.js" || fail "apps/cli is not built (tools/gpu/prepare.sh builds everything)"
rm -rf "$WORK" && mkdir -p "$WORK/results"
phase "$(date -u +%FT%TZ) device $DEVICE, $LAYERS layers $SHAPE, rates $RATES, $NUM_PROMPTS prompts x ($INPUT_LEN in, $OUTPUT_LEN out), commit ${MARLIN_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null)}"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

# shellcheck disable=SC2086 # SHAPE is a list of options
model_opts=(--layers "$LAYERS" --device "$DEVICE" $SHAPE "${tok[@]}")
phase "random fp16 model"
timeout 300 "${marlin[@]}" bench random-model "$WORK/dense" "${model_opts[@]}" --seed 1 || fail "making the fp16 model failed"
if [ "$MARLIN_FROM" = rtn ]; then
  phase "Marlin 4-bit copy: marlin quantize --method rtn"
  timeout 1800 "${marlin[@]}" quantize "$WORK/dense" --out "$WORK/marlin" --method rtn --bits 4 --group-size 128 --quiet || fail "quantize failed"
else
  phase "random Marlin 4-bit model (group 128, same shape)"
  timeout 300 "${marlin[@]}" bench random-model "$WORK/marlin" "${model_opts[@]}" --format marlin --seed 2 || fail "making the Marlin model failed"
fi
du -sh "$WORK/dense" "$WORK/marlin"

# serve_and_bench NAME DIR PORT: start the server, wait for it, benchmark it, stop it with SIGTERM.
serve_and_bench() {
  local name=$1 dir=$2 port=$3 log="$OUT/server-$1.log"
  phase "$name: marlin serve"
  "${marlin[@]}" serve "$dir" --host 127.0.0.1 --port "$port" --device "$DEVICE" --max-num-seqs "$MAX_NUM_SEQS" \
    --max-model-len "$MAX_MODEL_LEN" --max-queued 1024 --shutdown-timeout 10 > "$log" 2>&1 &
  local pid=$! waited=0
  until grep -q "listening on" "$log"; do
    kill -0 "$pid" 2>/dev/null || { tail -20 "$log"; fail "$name: the server exited before listening"; }
    [ $waited -ge 600 ] && { kill -9 "$pid"; fail "$name: the server did not listen within 300 s"; }
    sleep 0.5
    waited=$((waited + 1))
  done
  grep "listening on" "$log"
  phase "$name: marlin bench serve"
  timeout 600 "${marlin[@]}" bench serve --base-url "http://127.0.0.1:$port" --request-rate "$RATES" --num-prompts "$NUM_PROMPTS" \
    --dataset fixed --input-len "$INPUT_LEN" --output-len "$OUTPUT_LEN" --seed 0 --label "$name" --result-dir "$WORK/results"
  local rc=$?
  kill -TERM "$pid"
  wait "$pid"
  local src=$?
  grep -E "stopped|Error" "$log" | tail -3
  [ $rc = 0 ] || fail "$name: bench serve exited $rc"
  [ $src = 0 ] || fail "$name: the server exited $src after SIGTERM (want 0)"
  cp "$WORK/results/serve-$name.json" "$OUT/"
}

serve_and_bench dense "$WORK/dense" 8100
serve_and_bench marlin "$WORK/marlin" 8101

phase "dense vs Marlin"
"${marlin[@]}" bench compare "$OUT/serve-dense.json" "$OUT/serve-marlin.json" --out "$OUT/serve-compare.svg" || fail "compare failed"
rm -rf "$WORK"
phase "done"
