# Sourced by the device-call scripts (call-decode.sh, kernel-wg.sh): a time guard of GUARD seconds
# from when this is sourced, and `step NAME TIMEOUT COMMAND...`, which runs the command into
# $OUT/NAME.log within the time left and prints its exit status and summary lines. Logs are
# written to a scratch folder (OUT points there after sourcing) and packed into the real $OUT/logs.tgz
# after every step, so a call cut short by the device's time limit still brings back what ran
# (only 8 files come back from $OUT: one archive, never a spill of loose logs).
t0=$(date +%s)
OUT_REAL=${OUT:-/tmp/out}
rm -rf /tmp/call-logs  # a warm machine keeps /tmp: no logs of an earlier call in this one
mkdir -p "$OUT_REAL" /tmp/call-logs
OUT=/tmp/call-logs
# Pack every log and JSON under $OUT into $OUT_REAL/logs.tgz (atomically: a cut leaves the last one).
snapshot() { (cd "$OUT" && tar czf "$OUT_REAL/.logs.tgz" $(ls *.log *.json *.txt 2>/dev/null) && mv "$OUT_REAL/.logs.tgz" "$OUT_REAL/logs.tgz"); }
guard=${GUARD:-560}
left() { echo $(( guard - ($(date +%s) - t0) )); }
step() { # name timeout command...
  local name=$1 to=$2; shift 2
  local l; l=$(left)
  if [ "$l" -lt 15 ]; then echo "$name: skipped (time)"; return; fi
  [ "$to" -gt "$l" ] && to=$l
  local s; s=$(date +%s)
  timeout "$to" "$@" > "$OUT/$name.log" 2>&1
  echo "$name rc=$? ($(( $(date +%s) - s )) s): $(grep -hE '^SUMMARY|ERROR SUMMARY|RACECHECK SUMMARY|Tests +[0-9]|failed|FAIL|decode batch|^ *[0-9]+ +[0-9]+ +[0-9.]+ ' "$OUT/$name.log" | head -40)"
  snapshot
}
