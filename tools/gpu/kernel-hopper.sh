#!/usr/bin/env bash
# One call on the GPU machine for the Hopper wgmma kernel and the dequantize-then-cuBLAS path:
#   run(command="bash tools/gpu/kernel-hopper.sh")            (no carry needed: nvcc builds there)
# Steps (each logged under $OUT, at most 7 files; a summary table is printed last):
#   1. the CPU emulator of the kernel's index math (g++)          -> in build.log
#   2. the standalone harness built with nvcc (sm_90 + sm_90a)    -> build.log, sass.txt
#   3. hopper-probe (one-hot activations) and hopper-test (the correctness matrix of both paths
#      against fp64: every variant, m in {1..4096}, small odd and real shapes)  -> probe.log, hopper-test.log
#   4. compute-sanitizer memcheck and racecheck on small cases   -> sanitize.log
#   5. hopper-bench: per block and m, cuBLAS / mma.sync Marlin / wgmma / dequant + cuBLAS, held
#      timing, weights rotated past 3x L2                         -> hopper-bench.log, hopper-bench.json
# Environment: QUICK=1 runs the short correctness matrix; SKIP_BENCH=1 / SKIP_SANITIZE=1 skip steps;
# BENCH_MS=16,64 or BENCH_FILTER=70b narrow the bench.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
export PATH=/usr/local/cuda/bin:$PATH
bin=/tmp/marlin-hopper-harness
start=$(date +%s)
elapsed() { echo $(($(date +%s) - start)); }
status=()  # "step|result" rows for the summary

echo "== $(date -u +%FT%TZ) $(nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader 2>/dev/null), $(nvcc --version | grep -o 'release [0-9.]*'), $(nproc) cores"
echo "== commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo -dirty)"

# 1 + 2: emulator and build
{
  echo "== emulator"
  g++ -std=c++17 -O2 -I native/src native/src/kernel/hopper/standalone/emulate.cpp -o /tmp/marlin-hopper-emulate && /tmp/marlin-hopper-emulate | tail -4
  echo "== build"
  rm -f "$bin"
  OBJ_ROOT=/tmp/marlin-hopper-obj MARLIN_CUDA_ARCHS=90 HARNESS_FLAGS="-Xptxas -v" bash native/src/kernel/marlin/standalone/build.sh "$bin" > /tmp/marlin-hopper-build.txt 2>&1
  echo "build.sh exit $?"
  # ptxas: errors, warnings (C75xx = wgmma serialized), and the Hopper kernels' registers and spills
  grep -E "error|warning|C75|HopperKernel|bytes stack frame|Used [0-9]+ registers" /tmp/marlin-hopper-build.txt |
    grep -B1 -A2 -E "error|warning|C75|HopperKernel" | grep -v "^--$"
} > "$OUT/build.log" 2>&1
emu=$(grep -h "EMULATION SUMMARY" "$OUT/build.log" | tail -1)
status+=("emulator|${emu:-did not run}")
if [ ! -x "$bin" ]; then
  tail -40 "$OUT/build.log"
  echo "build failed after $(elapsed) s (log: build.log)"
  exit 1
fi
status+=("build|ok after $(elapsed) s")

# SASS: every Hopper kernel must issue HGMMA; local memory (LDL/STL) shows spills.
cuobjdump --dump-sass "$bin" 2>/dev/null | awk '
  /Function :/ { name = $3 }
  name ~ /HopperKernel/ && /HGMMA/ { h[name]++ }
  name ~ /HopperKernel/ && /(LDL|STL)/ { l[name]++ }
  name ~ /HopperKernel/ && /WARPGROUP.ARRIVE|WARPGROUP.DEPBAR/ { w[name]++ }
  END { for (n in h) printf "%-100s HGMMA %4d  LDL/STL %4d  warpgroup sync %4d\n", n, h[n], l[n] + 0, w[n] + 0 }' | sort > "$OUT/sass.txt"
kernels=$(wc -l < "$OUT/sass.txt")
status+=("sass|$kernels Hopper kernels with HGMMA (sass.txt); LDL/STL in $(awk '$5 > 0' "$OUT/sass.txt" | wc -l) of them")

# 3: correctness
timeout 120 "$bin" hopper-probe > "$OUT/probe.log" 2>&1
status+=("probe|rc=$? $(grep -h 'PROBE SUMMARY' "$OUT/probe.log" | tail -1)")
mode=""
[ "${QUICK:-0}" = 1 ] && mode=quick
t=$(date +%s)
timeout 300 "$bin" hopper-test $mode > "$OUT/hopper-test.log" 2>&1
rc=$?
status+=("hopper-test|rc=$rc $(grep -h '^SUMMARY' "$OUT/hopper-test.log" | tail -1) ($(($(date +%s) - t)) s)")

# 4: compute-sanitizer (no watchdog: instrumented kernels are slow)
if [ "${SKIP_SANITIZE:-0}" != 1 ]; then
  {
    echo "== memcheck"
    MARLIN_HOPPER_WATCHDOG=0 timeout 150 compute-sanitizer --tool memcheck --print-limit 20 "$bin" hopper-sanitize 2>&1 | tail -30
    echo "== racecheck"
    MARLIN_HOPPER_WATCHDOG=0 timeout 150 compute-sanitizer --tool racecheck --print-limit 20 "$bin" hopper-sanitize 2>&1 | tail -30
  } > "$OUT/sanitize.log" 2>&1
  status+=("memcheck|$(sed -n '/== memcheck/,/== racecheck/p' "$OUT/sanitize.log" | grep -hE 'ERROR SUMMARY|^SUMMARY' | tr '\n' ' ')")
  status+=("racecheck|$(sed -n '/== racecheck/,$p' "$OUT/sanitize.log" | grep -hE 'RACECHECK SUMMARY|ERROR SUMMARY|^SUMMARY' | tr '\n' ' ')")
fi

# 5: bench
if [ "${SKIP_BENCH:-0}" != 1 ]; then
  t=$(date +%s)
  timeout 300 "$bin" hopper-bench "$OUT/hopper-bench.json" > "$OUT/hopper-bench.log" 2>&1
  status+=("hopper-bench|rc=$? ($(($(date +%s) - t)) s)")
fi

echo
echo "================ kernel-hopper summary ($(elapsed) s)"
for s in "${status[@]}"; do printf "%-13s %s\n" "${s%%|*}" "${s#*|}"; done
echo "---- first failures (hopper-test.log)"
grep -hE "^FAIL|mismatch|unwritten at|counters left|launch failed" "$OUT/hopper-test.log" | head -16
echo "---- probe"
grep -hE "token|probe k=" "$OUT/probe.log" | head -10
echo "---- sass (HGMMA per kernel)"
sed 's/_ZN6marlin6hopper12HopperKernelI//' "$OUT/sass.txt" | cut -c1-150 | head -20
if [ -f "$OUT/hopper-bench.log" ]; then
  echo "---- bench (ms per block; speedups over cuBLAS FP16)"
  grep -vE "^$" "$OUT/hopper-bench.log" | tail -32
fi
