# Sourced by the device-call scripts (call-decode.sh, kernel-wg.sh): a time guard of GUARD seconds
# from when this is sourced, and `step NAME TIMEOUT COMMAND...`, which runs the command into
# $OUT/NAME.log within the time left and prints its exit status and summary lines.
t0=$(date +%s)
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
}
