#!/usr/bin/env bash
# The engine's GPU check in one device call. Prepare here first (builds the addon for sm_90, packs
# Node, the built tree and the tiny-llama fixture into .carry/):
#   tools/gpu/prepare.sh --with-model
# then on the device machine:
#   run(carry=[".carry"], command="bash packages/engine/scripts/gpu-check.sh [--quick]")
# It runs the engine's tests (GPU ones included: CUDA ops vs CPU ops, tiny-llama batch vs single,
# prefix cache, chunked prefill, CUDA graphs, Marlin RTN model, perplexity on GPU and CPU), the CUDA
# ops test once under compute-sanitizer memcheck, then the benchmark (bench/run.mjs). Logs and
# results land in $OUT.
set -uo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$root"
quick=""
[ "${1:-}" = "--quick" ] && quick="--quick"
OUT=${OUT:-/tmp/out}
vitest="$root/node_modules/vitest/vitest.mjs"
bash tools/gpu/on-device.sh sh "cd packages/engine && timeout 300 node $vitest run --reporter=verbose 2>&1 | tee $OUT/engine-tests.log | grep -vE '^ +✓' | tail -70"
bash tools/gpu/on-device.sh sh "cd packages/engine && command -v compute-sanitizer >/dev/null && timeout 150 compute-sanitizer --tool memcheck --print-limit 20 node $vitest run test/gpu.test.ts -t 'CUDA ops' 2>&1 | tee $OUT/engine-memcheck.log | grep -E 'ERROR SUMMARY|Tests|FAIL|Invalid' | head -20"
bash tools/gpu/on-device.sh engine-bench $quick
