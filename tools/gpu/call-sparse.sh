# call 1: the 2:4 kernel end to end, then GPU suites while time remains
t0=$(date +%s)
QUICK=1 BENCH_ARGS="--m 1,16,32,64,128 --shapes llama2-7b,llama3-70b,16384x65536" timeout 420 bash tools/gpu/sparse.sh
el=$(( $(date +%s) - t0 ))
echo "== elapsed $el s"
if [ $el -lt 380 ]; then
  for p in kernel engine gptq; do
    left=$(( 560 - ($(date +%s) - t0) ))
    [ $left -gt 30 ] || break
    echo "== vitest $p ($left s left)"
    (cd packages/$p && timeout $left node ../../node_modules/vitest/vitest.mjs run 2>&1) > $OUT/t-$p.log; echo "rc=$?"; grep -E "Test Files|Tests |FAIL|✗|×" $OUT/t-$p.log | head -20
  done
fi
cd $OUT && tar czf logs.tgz *.log *.json 2>/dev/null && find . -type f ! -name logs.tgz ! -name harness-bench.log ! -name sparse-bench.json -delete; ls -la
