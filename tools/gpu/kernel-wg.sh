#!/usr/bin/env bash
# Device call for the ring kernel's wgmma tile (issue 12): the standalone harness built here
# (`OBJ_ROOT=/tmp/hobj MARLIN_CUDA_ARCHS=90 bash native/src/kernel/marlin/standalone/build.sh
# .carry-h/harness`), carried in .carry-h/ (no Node needed); an optional second build as
# .carry-h/harness-pk is benched beside it. Correctness with the tile on for every m <= 128
# (MARLIN_WG=3), compute-sanitizer, the block bench (automatic rule, tile off, tile everywhere) and
# m = 32 / 64 / 128 sweeps in this call, SASS counts of the wgmma kernels, ncu on 16384 x 65536.
# Logs packed into $OUT/logs.tgz. (Session 8's first call, c4a37c7, ran an earlier version: m <= 64
# with MARLIN_WG=2, m = 16 sweeps, and the m <= 8 tile's 256-row size rule.)
#   run(carry=[".carry-h"], command="bash tools/gpu/kernel-wg.sh")
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
h=$PWD/.carry-h/harness
source "$(dirname "$0")/steps.sh"  # t0, guard (GUARD, default 560 s), left, step
echo "== $(date -u +%FT%TZ) $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null) commit $(cat .carry-h/commit 2>/dev/null)"
(cuobjdump -sass "$h" 2>/dev/null | awk '/Function : .*Lb1ELb1E/{p=1} /Function : /&&!/Lb1ELb1E/{p=0} p' > "$OUT/sass-wg.txt"
 for w in HGMMA R2UR 'LDL|STL'; do echo "$w $(grep -cE "$w" "$OUT/sass-wg.txt")"; done > "$OUT/sass-count.log") &
# Correctness with the tile on for every m <= 128 on n % 256 layers (MARLIN_WG=3), sanitizers.
step quick-wg3 150 env MARLIN_WG=3 "$h" quick
step memcheck-wg3 50 env MARLIN_WG=3 compute-sanitizer --tool memcheck "$h" sanitize
step racecheck-wg3 60 env MARLIN_WG=3 compute-sanitizer --tool racecheck "$h" sanitize
# Blocks: the automatic rule, the tile off, the tile everywhere; the 64-token tile's commit per k16 tile.
ms=${BENCH_MS:-16,32,64,128}
step bench-auto 60 env BENCH_MS=$ms "$h" bench
step bench-wg0 60 env BENCH_MS=$ms MARLIN_WG=0 "$h" bench
step bench-wg3 60 env BENCH_MS=$ms MARLIN_WG=3 "$h" bench
[ -x "$h-pk" ] && step bench-wg3-pk 60 env BENCH_MS=$ms MARLIN_WG=3 "$h-pk" bench
for m in 32 64 128; do
  step sweep$m-wg0 25 env MARLIN_WG=0 "$h" sweep $m
  step sweep$m-wg3 25 env MARLIN_WG=3 "$h" sweep $m
done
ncu_wg() {
  local m="gpu__time_duration.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,smsp__issue_active.avg.pct_of_peak_sustained_active,smsp__inst_executed.sum,sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active,launch__registers_per_thread,launch__grid_size,smsp__warp_issue_stalled_barrier_per_warp_active.pct,smsp__warp_issue_stalled_wait_per_warp_active.pct,smsp__warp_issue_stalled_long_scoreboard_per_warp_active.pct"
  for c in "3 32" "3 64" "0 128" "3 128"; do set -- $c
    echo "== wg=$1 m=$2 16384 65536"
    MARLIN_WG=$1 ncu --metrics "$m" -k regex:Marlin --launch-skip 20 --launch-count 1 "$h" one 16384 65536 $2 2>&1 | grep -E 'MarlinKernel|duration|dram__|issue_active|inst_executed|pipe_tensor|registers|grid_size|stalled'
  done
}
export -f ncu_wg
export h
step ncu 60 bash -c ncu_wg
wait
echo "== $(( $(date +%s) - t0 )) s"
snapshot; ls -la "$OUT_REAL"
