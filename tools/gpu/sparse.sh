#!/usr/bin/env bash
# One call on the GPU machine for the 2:4 sparse kernel (native/src/sparse):
#   run(command="bash tools/gpu/sparse.sh")                         harness steps only (nvcc there)
#   run(carry=[".carry"], command="bash tools/gpu/sparse.sh")       + vitest GPU tests and the bench
#                                                                   (.carry from tools/gpu/prepare.sh)
# Steps (logs under $OUT, at most 8 files; a summary table is printed last):
#   1. the standalone harness built with nvcc for sm_90 (and compiled for sm_80)  -> build.log
#   2. harness probe (which metadata layout the hardware reads)                     -> probe.log
#      harness test: fp16/bf16 x group 128/per-channel x small odd and real shapes x
#      m in {1,2,7,16,17,33,64,128,255,1000} against the CPU path; poison, repeats, workspace -> harness-test.log
#   3. compute-sanitizer memcheck and racecheck on `harness sanitize`              -> sanitize.log
#   4. with .carry: packages/sparse vitest (sparse24.gpu.test.ts runs there)         -> test-sparse.log
#   5. with .carry: packages/sparse/bench/run.mjs, marlinMs beside sparseMs         -> sparse-bench.log/.json
# Environment: QUICK=1 short matrix; SKIP_SANITIZE=1, SKIP_BENCH=1; BENCH_ARGS="--m 1,16,64 --shapes llama3-70b".
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
export PATH=/usr/local/cuda/bin:$PATH
bin=/tmp/marlin-sparse-harness
status=()
start=$(date +%s)

echo "== $(date -u +%FT%TZ) $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null), $(nvcc --version | grep -o 'release [0-9.]*')"
echo "== commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"

if [ -f .carry/sparse-harness.xz ]; then
  # Built on the dev machine (`bash native/src/sparse/standalone/build.sh /tmp/h && xz -c /tmp/h >
  # .carry/sparse-harness.xz`): no nvcc time here.
  xz -dc .carry/sparse-harness.xz > "$bin" && chmod +x "$bin"
  echo "== prebuilt harness from .carry" > "$OUT/build.log"
else
{
  echo "== build sm_90"
  rm -f "$bin"
  MARLIN_CUDA_ARCHS=90 HARNESS_FLAGS="-Xptxas -v" bash native/src/sparse/standalone/build.sh "$bin" 2>&1 | grep -E "error|warning|Sparse24Kernel|Used [0-9]+ registers|stack frame" | head -40
  echo "== compile sm_80"
  nvcc -std=c++17 -O3 -DMARLIN_WITH_CUDA=1 -Inative/src -arch=sm_80 -c native/src/sparse/launch.cu -o /tmp/marlin-sparse-sm80.o && echo "sm_80 ok"
} > "$OUT/build.log" 2>&1
fi
status+=("build|ok ($(head -1 "$OUT/build.log"))")
# SASS: the kernel must issue sparse HMMA (HMMA.SP) and spill nothing.
sp=$(cuobjdump --dump-sass "$bin" 2>/dev/null | grep -c "HMMA.*SP" || true)
status+=("sass|$sp sparse HMMA instructions")

# Which reading of the PTX metadata figure the hardware has (see harness.cu, probe).
timeout 60 "$bin" probe > "$OUT/probe.log" 2>&1
status+=("probe|rc=$? $(grep -h 'PROBE SUMMARY' "$OUT/probe.log" | tail -1)")

mode=""
[ "${QUICK:-0}" = 1 ] && mode=quick
timeout 400 "$bin" test $mode > "$OUT/harness-test.log" 2>&1
status+=("harness test|rc=$? $(grep -h '^SUMMARY' "$OUT/harness-test.log" | tail -1)")

timeout 300 "$bin" vtest > "$OUT/harness-vtest.log" 2>&1
status+=("harness vtest|rc=$? $(grep -h '^SUMMARY' "$OUT/harness-vtest.log" | tail -1)")
if [ "${SKIP_BENCH:-0}" != 1 ]; then
  timeout 300 "$bin" bench ${HBENCH_MS:-1,8,16,32,64} > "$OUT/harness-bench.log" 2>&1
  status+=("harness bench|rc=$? $(grep -c '^BEST' "$OUT/harness-bench.log") (block, m) rows")
fi

if [ "${SKIP_SANITIZE:-0}" != 1 ]; then
  {
    echo "== memcheck"
    timeout 200 compute-sanitizer --tool memcheck --print-limit 20 "$bin" sanitize 2>&1 | tail -30
    echo "== racecheck"
    timeout 200 compute-sanitizer --tool racecheck --print-limit 20 "$bin" sanitize 2>&1 | tail -30
  } > "$OUT/sanitize.log" 2>&1
  status+=("memcheck|$(sed -n '/== memcheck/,/== racecheck/p' "$OUT/sanitize.log" | grep -hE 'ERROR SUMMARY|^SUMMARY' | tr '\n' ' ')")
  status+=("racecheck|$(sed -n '/== racecheck/,$p' "$OUT/sanitize.log" | grep -hE 'RACECHECK SUMMARY|ERROR SUMMARY|^SUMMARY' | tr '\n' ' ')")
fi

if [ -f .carry/node.xz ]; then
  mkdir -p /tmp/marlin-node
  [ -x /tmp/marlin-node/node ] || { xz -dc .carry/node.xz > /tmp/marlin-node/node && chmod +x /tmp/marlin-node/node; }
  export PATH=/tmp/marlin-node:$PATH
  tar -xJf .carry/tree.tar.xz
  export MARLIN_COMMIT=$(cat .carry/commit 2>/dev/null || echo unknown)
  (cd packages/sparse && node "$root/node_modules/vitest/vitest.mjs" run --reporter=verbose 2>&1) > "$OUT/test-sparse.log"
  status+=("vitest sparse|rc=$? $(grep -hE 'Tests +[0-9]' "$OUT/test-sparse.log" | tail -1)")
  if [ "${SKIP_BENCH:-0}" != 1 ]; then
    (cd packages/sparse && timeout 500 node bench/run.mjs ${BENCH_ARGS:-}) > "$OUT/sparse-bench.log" 2>&1
    status+=("bench|rc=$? $(tail -1 "$OUT/sparse-bench.log")")
    cp bench/results/sparse-bench.json "$OUT/" 2>/dev/null
  fi
else
  status+=("vitest + bench|skipped: no .carry (tools/gpu/prepare.sh)")
fi

echo
echo "== summary ($(($(date +%s) - start)) s)"
for s in "${status[@]}"; do printf '%-16s %s\n' "${s%%|*}" "${s#*|}"; done
