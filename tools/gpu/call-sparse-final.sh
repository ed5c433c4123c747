#!/usr/bin/env bash
# A short 2:4 device call with a time guard (GUARD seconds, default 230), for the end of a device
# budget: harness probe / test (QUICK) / vtest / bench, the dense-vs-2:4 Node bench, engine decode
# (Marlin vs 2:4), compute-sanitizer, the sparse vitest suite, each only while time is left; every
# log is packed into $OUT/logs.tgz.
#   run(carry=[".carry"], command="bash tools/gpu/on-device.sh sh 'bash tools/gpu/call-sparse-final.sh'")
t0=$(date +%s)
guard=${GUARD:-230}
left() { echo $(( guard - ($(date +%s) - t0) )); }
bin=/tmp/marlin-sparse-harness
xz -dc .carry/sparse-harness.xz > $bin && chmod +x $bin
step() { # name timeout command...
  local name=$1 to=$2; shift 2
  local l; l=$(left)
  if [ "$l" -lt 15 ]; then echo "$name: skipped (time)"; return; fi
  [ "$to" -gt "$l" ] && to=$l
  timeout "$to" "$@" > "$OUT/$name.log" 2>&1
  echo "$name rc=$?: $(grep -hE '^SUMMARY|PROBE SUMMARY|ERROR SUMMARY|RACECHECK SUMMARY|Tests +[0-9]|^BEST|ratio|decode batch' "$OUT/$name.log" | head -16)"
}
step probe 30 $bin probe
step harness-test 80 $bin test quick
step harness-vtest 60 $bin vtest
step harness-bench 60 $bin bench 1,8,16
step sparse-bench 60 bash -c "cd packages/sparse && node bench/run.mjs --m 1,8,16 --shapes llama2-7b,llama3-70b,16384x65536 && cp ../../bench/results/sparse-bench.json $OUT/"
step engine-sparse 70 bash -c "cd packages/engine && node bench/run.mjs --sections decode --kinds marlin,sparse24 && cp ../../bench/results/engine-bench.json $OUT/engine-sparse.json"
step memcheck 40 compute-sanitizer --tool memcheck $bin sanitize
step racecheck 40 compute-sanitizer --tool racecheck $bin sanitize
step test-sparse 100 bash -c "cd packages/sparse && node ../../node_modules/vitest/vitest.mjs run"
echo "== $(( $(date +%s) - t0 )) s"
cd $OUT && tar czf logs.tgz *.log *.json 2>/dev/null && find . -type f ! -name logs.tgz -delete; ls -la
