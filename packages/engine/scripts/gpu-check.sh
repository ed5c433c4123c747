#!/usr/bin/env bash
# The engine's GPU check in one device call. Prepare here first (builds the addon for sm_90, packs
# Node, the built tree and the tiny-llama fixture into .carry/):
#   tools/gpu/prepare.sh --with-model
# then on the device machine:
#   run(carry=[".carry"], command="bash packages/engine/scripts/gpu-check.sh [all|tests|memcheck|bench] [--quick]")
# tests:    the engine's vitest suite; the GPU tests compare the CUDA ops with the CPU ops, run
#           tiny-llama batch vs one at a time (prefix cache, chunked prefill, CUDA graphs), a Marlin
#           RTN-4bit model, and perplexity on the GPU and the CPU.
# memcheck: the CUDA-ops test once under compute-sanitizer memcheck.
# bench:    bench/run.mjs (Llama-2-7B shape, random weights, dense fp16 vs Marlin 4-bit g128).
# Logs and results land in $OUT (bench JSON / SVG also under bench/results/).
set -uo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$root"
what=${1:-all}
quick=""
for a in "$@"; do [ "$a" = "--quick" ] && quick="--quick"; done
OUT=${OUT:-/tmp/out}
vitest="$root/node_modules/vitest/vitest.mjs"
if [ "$what" = all ] || [ "$what" = tests ]; then
  bash tools/gpu/on-device.sh sh "cd packages/engine && timeout 240 node $vitest run --reporter=verbose 2>&1 | tee $OUT/engine-tests.log | grep -vE '^ +✓' | tail -60"
fi
if [ "$what" = all ] || [ "$what" = memcheck ]; then
  bash tools/gpu/on-device.sh sh "cd packages/engine && timeout 100 compute-sanitizer --tool memcheck --target-processes all --print-limit 20 node $vitest run test/gpu.test.ts -t 'CUDA ops' 2>&1 | tee $OUT/engine-memcheck.log | grep -E 'ERROR SUMMARY|Tests |FAIL|Invalid|rror' | head -20"
fi
if [ "$what" = all ] || [ "$what" = bench ]; then
  bash tools/gpu/on-device.sh engine-bench $quick
fi
