#!/usr/bin/env bash
# One device call for the 2:4 work (run through on-device.sh, which unpacks .carry): tools/gpu/sparse.sh
# (QUICK matrix), then the GPTQ GPU suites, then, if the harness matrix passed, the engine's decode
# with Marlin 4-bit and 2:4 sparse side by side; logs packed into $OUT/logs.tgz.
#   run(carry=[".carry"], command="bash tools/gpu/on-device.sh sh 'bash tools/gpu/call-sparse.sh'")
t0=$(date +%s)
QUICK=1 BENCH_ARGS="${BENCH_ARGS:---m 1,16,32,64,128 --shapes llama2-7b,llama3-70b,16384x65536}" timeout 420 bash tools/gpu/sparse.sh
echo "== elapsed $(( $(date +%s) - t0 )) s"
(cd packages/gptq && timeout 200 node ../../node_modules/vitest/vitest.mjs run test/gpu.test.ts test/sparse.gpu.test.ts 2>&1) > $OUT/t-gptq.log
echo "gptq GPU suites rc=$?: $(grep -E 'Tests ' $OUT/t-gptq.log)"
if grep -q "^SUMMARY test: .* 0 failed" $OUT/harness-test.log; then
  left=$(( 570 - ($(date +%s) - t0) ))
  echo "== engine decode, Marlin vs 2:4 ($left s left)"
  (cd packages/engine && timeout $left node bench/run.mjs --sections decode --kinds ${KINDS:-marlin,sparse24} 2>&1) > $OUT/engine-sparse.log
  grep -E "decode batch|ratio|weights" $OUT/engine-sparse.log | head -20
  cp bench/results/engine-bench.json $OUT/engine-sparse.json 2>/dev/null
fi
cd $OUT && tar czf logs.tgz *.log *.json 2>/dev/null && find . -type f ! -name logs.tgz ! -name harness-bench.log ! -name sparse-bench.json -delete; ls -la
