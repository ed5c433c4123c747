#!/usr/bin/env bash
# One device call for the 2:4 work (run through on-device.sh, which unpacks .carry): tools/gpu/sparse.sh
# (QUICK matrix), then the GPTQ GPU suites, then, if the harness matrix passed, the engine's decode
# with Marlin 4-bit and 2:4 sparse side by side; logs packed into $OUT/logs.tgz.
#   run(carry=[".carry"], command="bash tools/gpu/on-device.sh sh 'bash tools/gpu/call-sparse.sh'")
t0=$(date +%s)
QUICK=1 BENCH_ARGS="${BENCH_ARGS:---m 1,16,32,64,128 --shapes llama2-7b,llama3-70b,16384x65536}" timeout 420 bash tools/gpu/sparse.sh
echo "== elapsed $(( $(date +%s) - t0 )) s"
# ncu on one launch of the decode shapes (NCU="K N M D KW H W WHOLE;..." overrides).
if [ -n "${NCU:-}" ] && command -v ncu >/dev/null; then
  IFS=';' read -ra cases <<< "$NCU"
  for c in "${cases[@]}"; do
    echo "== ncu $c" >> $OUT/ncu.log
    timeout 90 ncu --section SpeedOfLight --section MemoryWorkloadAnalysis --section WarpStateStats --section Occupancy --section LaunchStats \
      --launch-skip 3 --launch-count 1 -k regex:Sparse24Kernel /tmp/marlin-sparse-harness one $c 6 >> $OUT/ncu.log 2>&1
  done
  echo "ncu: $(grep -c '== ncu' $OUT/ncu.log) launches profiled"
fi
if grep -q "^SUMMARY test: .* 0 failed" $OUT/harness-test.log; then
  left=$(( 570 - ($(date +%s) - t0) ))
  echo "== engine decode, Marlin vs 2:4 ($left s left)"
  (cd packages/engine && timeout $left node bench/run.mjs --sections decode --kinds ${KINDS:-marlin,sparse24} 2>&1) > $OUT/engine-sparse.log
  grep -E "decode batch|ratio|weights" $OUT/engine-sparse.log | head -20
  cp bench/results/engine-bench.json $OUT/engine-sparse.json 2>/dev/null
fi
for p in ${SUITES:-gptq}; do
  files=""; [ "$p" = gptq ] && files="test/gpu.test.ts test/sparse.gpu.test.ts"
  (cd packages/$p && timeout $(( 575 - ($(date +%s) - t0) )) node ../../node_modules/vitest/vitest.mjs run $files 2>&1) > $OUT/t-$p.log
  echo "$p GPU suites rc=$?: $(grep -E 'Tests ' $OUT/t-$p.log)"
done
cd $OUT && tar czf logs.tgz *.log *.json 2>/dev/null && find . -type f ! -name logs.tgz ! -name harness-bench.log ! -name sparse-bench.json -delete; ls -la
