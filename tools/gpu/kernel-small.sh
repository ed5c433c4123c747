#!/usr/bin/env bash
# The m <= 16 kernel experiments (issue 12, item 2) in one device call: correctness of every
# variant (focused matrix, the 99 KB shared-memory emulation, compute-sanitizer memcheck and
# racecheck), then all variants timed side by side in one process (`harness compare`: the sweep
# layers and the four transformer blocks at m = 1, 16, 32, cuBLAS beside them), the standard
# `harness bench` of the base commit and of this tree, SASS opcode counts and a few ncu numbers.
#
# Here (builds the two harness binaries for sm_90 into .gpu/ksmall/, ~10 min on 2 cores):
#   tools/gpu/kernel-small.sh prepare
# There, with the device tool:
#   run(carry=[".gpu/ksmall"], command="bash tools/gpu/kernel-small.sh")
# Knobs: VARIANTS (syntax in native/src/kernel/marlin/standalone/harness_small.inc; `base` first),
# BUDGET_S (default 340: optional steps are skipped past it), REF=1 (also build and time the
# reference Marlin; prepare copies it), NCU=0 (skip ncu). Logs: at most 8 files under $OUT.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
dir=.gpu/ksmall
base_commit=af8586d  # the tree the first H200 sweep measured

if [ "${1:-}" = prepare ]; then
  set -e
  mkdir -p "$dir"
  HARNESS_FLAGS="-DMARLIN_EXPERIMENTS=1" bash native/src/kernel/marlin/standalone/build.sh "$dir/harness"
  xz -T2 -6 -f "$dir/harness"
  if [ ! -f "$dir/harness-base.xz" ]; then  # the base commit's harness (its own object cache)
    tmp=$(mktemp -d /tmp/ksmall-base-XXXXXX)
    git archive "$base_commit" native | tar -x -C "$tmp"
    OBJ_ROOT=/tmp/marlin-harness-obj-base bash "$tmp/native/src/kernel/marlin/standalone/build.sh" "$dir/harness-base"
    rm -rf "$tmp"
    xz -T2 -6 -f "$dir/harness-base"
  fi
  rm -rf "$dir/peers" && cp -r "$root/../shared/peers" "$dir/peers" 2>/dev/null || echo "no ../shared/peers: REF=1 will be skipped"
  git rev-parse --short HEAD > "$dir/commit"
  du -sh "$dir"
  exit 0
fi

OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
logs=/tmp/ksmall-logs
rm -rf "$logs" && mkdir -p "$logs"
t0=$(date +%s)
budget=${BUDGET_S:-340}
elapsed() { echo $(($(date +%s) - t0)); }
left() { echo $((budget - $(elapsed))); }
say() { echo "== [$(elapsed)s] $*"; }

say "$(nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader 2>/dev/null), $(nvcc --version 2>/dev/null | grep -o 'release [0-9.]*'), tree $(cat $dir/commit 2>/dev/null || git rev-parse --short HEAD 2>/dev/null)"
H=/tmp/ksmall/harness
HB=/tmp/ksmall/harness-base
mkdir -p /tmp/ksmall
for b in harness harness-base; do
  if [ -f "$dir/$b.xz" ]; then xz -dc "$dir/$b.xz" > "/tmp/ksmall/$b" && chmod +x "/tmp/ksmall/$b"; fi
done
if [ ! -x "$H" ]; then
  say "no carried harness: building (sm_90, MARLIN_EXPERIMENTS) here"
  HARNESS_FLAGS="-DMARLIN_EXPERIMENTS=1" OBJ_ROOT=/tmp/ksmall-obj bash native/src/kernel/marlin/standalone/build.sh "$H" > "$logs/build.log" 2>&1 ||
    { tail -30 "$logs/build.log"; cp "$logs/build.log" "$OUT/"; exit 1; }
fi
[ -x "$HB" ] || say "no base-commit harness: the standard bench runs for this tree only"
t0=$(date +%s)  # the budget counts from here (a build on the device is not charged to it)

# Every variant, one per line: name:knobs (base first).
default_variants="base:;red:red=1;red.sl8:red=1,slices=8;st6:st=6;l2pf4:l2pf=4;swap:swap=1;swap.st8:swap=1,st=8;bulk:bulk=1;bulk.st6:bulk=1,st=6;red.swap8:red=1,swap=1,st=8;all6:red=1,swap=1,bulk=1,st=6;all8:red=1,swap=1,bulk=1,st=8"
VARIANTS=${VARIANTS:-$default_variants}
echo "$VARIANTS" | tr ';' '\n' | sed '/^ *$/d' > "$logs/variants.txt"

# SASS opcode counts of the m <= 16 kernels, f16 x u4 (CPU only; runs beside the tests).
(
  for sf in 4:0 6:0 4:1 8:1 6:2 8:3; do
    name="_ZN6marlin3gpu12MarlinKernelI6__halfLi4ELb0ELi1ELi8ELi8ELi${sf%%:*}ELi${sf##*:}EEEvNS0_10KernelArgsE"
    echo "### MB=1 TN=8 TK=8 stages=${sf%%:*} flags=${sf##*:} (1 swapped, 2 bulk): opcode counts"
    cuobjdump -sass -fun "$name" "$H" 2>&1 | awk '/\/\*[0-9a-f]+\*\// { for (i = 2; i <= NF; i++) if ($i !~ /^@/) { sub(/\..*/, "", $i); print $i; break } }' |
      sort | uniq -c | sort -rn | awk '{ printf "%s %s  ", $2, $1; t += $1 } END { print "| total " t }'
  done
) > "$logs/sass.txt" 2>&1 &
sass_pid=$!

# 1. Correctness. The default knobs on the standard quick matrix, then every variant on the
#    focused matrix (4 processes at a time; a variant that fails or hangs is left out of the timing).
say "correctness: harness quick (default knobs) and vtest per variant"
(timeout -k 5 150 "$H" quick > "$logs/quick.log" 2>&1; echo "rc=$?" >> "$logs/quick.log") &
quick_pid=$!
i=0
while read -r v; do
  i=$((i + 1))
  echo "$i $v"
done < "$logs/variants.txt" | xargs -P 4 -L 1 bash -c 'VARIANTS="$1" timeout -k 5 90 '"$H"' vtest > '"$logs"'/vtest-$0.log 2>&1; echo "rc=$?" >> '"$logs"'/vtest-$0.log'
# The 99 KB shared-memory emulation (sm_86 / sm_89 tile choices) for the variants that use more.
lim_variants=$(grep -E '^(base|st6|swap.st8|bulk.st6|all6|all8):' "$logs/variants.txt" | tr '\n' ';')
MARLIN_SMEM_LIMIT=101376 VARIANTS="$lim_variants" timeout -k 5 150 "$H" vtest > "$logs/vtest-smem99.log" 2>&1
echo "rc=$?" >> "$logs/vtest-smem99.log"
wait $quick_pid
passing=""
i=0
while read -r v; do
  i=$((i + 1))
  name=${v%%:*}
  f="$logs/vtest-$i.log"
  if grep -q '^SUMMARY: .* 0 failed' "$f" && grep -q '^rc=0' "$f"; then
    passing="$passing$v;"
    echo "vtest $name: $(grep '^SUMMARY' "$f")"
  else
    echo "vtest $name: FAILED or hung ($(grep '^SUMMARY' "$f" || true) $(tail -1 "$f")): left out of the timing"
    grep -m 5 FAIL "$f" || true
  fi
done < "$logs/variants.txt"
echo "vtest smem99: $(grep '^SUMMARY' "$logs/vtest-smem99.log" || tail -1 "$logs/vtest-smem99.log")"
grep -m 5 FAIL "$logs/vtest-smem99.log" || true
echo "quick: $(grep '^SUMMARY' "$logs/quick.log" || tail -1 "$logs/quick.log")"
grep -m 5 FAIL "$logs/quick.log" || true
case "$passing" in base:*) ;; *) passing="base:;$passing" ;; esac

# 2. compute-sanitizer: memcheck on every passing variant, racecheck on those with new
#    shared-memory schemes (parallel reduction, swapped tile, bulk copies / mbarriers).
say "compute-sanitizer memcheck + racecheck"
race_variants=$(echo "$passing" | tr ';' '\n' | grep -E '^(base|red|swap|bulk|all8):' | tr '\n' ';')
(VARIANTS="$passing" timeout -k 5 170 compute-sanitizer --tool memcheck --error-exitcode 7 "$H" vsanitize > "$logs/memcheck.log" 2>&1
  echo "rc=$?" >> "$logs/memcheck.log") &
mc_pid=$!
(VS_MS=1,16 VARIANTS="$race_variants" timeout -k 5 170 compute-sanitizer --tool racecheck --error-exitcode 7 "$H" vsanitize > "$logs/racecheck.log" 2>&1
  echo "rc=$?" >> "$logs/racecheck.log") &
rc_pid=$!
wait $mc_pid $rc_pid
for t in memcheck racecheck; do
  echo "$t: $(grep -E '^SUMMARY' "$logs/$t.log" | tail -1) | $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$logs/$t.log" | tail -1) | $(tail -1 "$logs/$t.log")"
  grep -m 3 -E 'FAIL|Invalid|hazard|Error' "$logs/$t.log" || true
done
cat "$logs"/quick.log "$logs"/vtest-*.log > "$OUT/correctness.log"
cat "$logs"/memcheck.log "$logs"/racecheck.log > "$OUT/sanitize.log"

# 3. Timing: every passing variant side by side (alone on the GPU).
say "harness compare: $(echo "$passing" | tr ';' ' ')"
VARIANTS="$passing" timeout -k 5 $(( $(left) > 120 ? $(left) - 60 : 120 )) "$H" compare "$OUT/compare.json" > "$OUT/compare.log" 2>&1
echo "compare rc=$?"
grep -E '^variants:|^device:' "$OUT/compare.log"

# 4. The standard bench (m = 1, 16, 32): the base commit, then this tree with its defaults.
if [ "$(left)" -gt 70 ]; then
  say "harness bench, base commit and this tree (BENCH_MS=1,16,32)"
  { [ -x "$HB" ] && { echo "### base $base_commit"; BENCH_MS=1,16,32 timeout -k 5 60 "$HB" bench; }
    echo "### this tree, default knobs"; BENCH_MS=1,16,32 timeout -k 5 60 "$H" bench; } > "$OUT/bench.log" 2>&1
else
  echo "bench skipped: budget" > "$OUT/bench.log"
fi

# 5. ncu on two shapes: base and the two widest variants (duration, DRAM, issue, tensor pipe).
if [ "${NCU:-1}" != 0 ] && [ "$(left)" -gt 45 ] && command -v ncu >/dev/null; then
  say "ncu"
  metrics=gpu__time_duration.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,sm__cycles_active.avg,gpc__cycles_elapsed.max,smsp__issue_active.avg.pct_of_peak_sustained_active,sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active,sm__inst_executed_pipe_alu.avg.pct_of_peak_sustained_active,smsp__inst_executed.sum,launch__registers_per_thread,launch__grid_size
  {
    for shape in "4096 4096 1" "16384 65536 1" "16384 65536 16"; do
      for env in "" "MARLIN_REDUCE=1 MARLIN_SWAP=1 MARLIN_STAGES_SMALL=8" "MARLIN_REDUCE=1 MARLIN_SWAP=1 MARLIN_BULK=1 MARLIN_STAGES_SMALL=8"; do
        [ "$(left)" -gt 25 ] || break 2
        echo "### $shape ${env:-default}"
        env $env timeout -k 5 40 ncu --metrics "$metrics" -k regex:MarlinKernel -c 1 "$H" one $shape 2>&1 | grep -vE '^==PROF==|^==WARNING==|Warning: Data|^\s*-+\s*-+' | tail -14
      done
    done
  } > "$OUT/ncu.txt" 2>&1
fi

# 6. Optional: the reference Marlin, timed the same way (held), at m = 1, 16, 32.
if [ "${REF:-0}" = 1 ] && [ -d "$dir/peers/marlin-reference" ] && [ "$(left)" -gt 100 ]; then
  say "reference Marlin"
  rm -rf /tmp/ksmall-peers && cp -r "$dir/peers" /tmp/ksmall-peers
  (cd /tmp/ksmall-peers/marlin-reference && TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=16 timeout 120 python3 setup.py build_ext --inplace > /tmp/ksmall-ref-build.log 2>&1) &&
    (cd /tmp/ksmall-peers && BATCHES=1,16,32 PYTHONPATH=marlin-reference timeout 90 python3 kernel_peer_bench.py) > "$OUT/ref.log" 2>&1 ||
    { echo "reference build/bench failed"; tail -5 /tmp/ksmall-ref-build.log; } | tee -a "$OUT/ref.log"
fi

wait $sass_pid 2>/dev/null
cp "$logs/sass.txt" "$OUT/sass.txt"

# 7. Summary: blocks (ms, % of floor, x cuBLAS, x base) and the layers at m = 1 / 16.
say "summary"
python3 - "$OUT/compare.json" <<'EOF' || tail -60 "$OUT/compare.log"
import json, sys
d = json.load(open(sys.argv[1]))
names = [v["name"] for v in d["variants"]]
print("variants: " + " ".join(f"{i}={n}" for i, n in enumerate(names)))
target = {"llama2-7b": 60, "llama3-70b": 80, "16384x65536": 88}
# The reference Marlin per block (ms, held timing, m <= 16 / m = 32) from issue 12's call: another
# call, so only a guide (REF=1 times it in this one: ref.log).
ref = {"llama2-7b": (0.070, 0.093), "llama2-13b": (0.089, 0.116), "llama3-70b": (0.180, 0.227), "16384x65536": (0.194, 0.239)}
print("\nblocks (ms; best = fastest variant; x = speedup): floor / cublas / base / best")
for b in d["blocks"]:
    ms = b["ms"]; best = min(range(len(ms)), key=lambda i: ms[i])
    pct = lambda t: 100 * b["floorMs"] / t
    xb = lambda t: b["cublasMs"] / t if b["cublasMs"] > 0 else 0
    tgt = target.get(b["shapes"]) if b["m"] <= 16 else None
    note = f" target {tgt}%" if tgt else (" target 2.0x cuBLAS" if b["shapes"] == "llama3-70b" and b["m"] == 32 else "")
    r = ref.get(b["shapes"], (0, 0))[0 if b["m"] <= 16 else 1] if b["m"] <= 32 else 0
    if r: note += f"; {r / ms[best]:.2f}x issue-12 reference" + (" (target 1.3x)" if b["m"] <= 16 else "")
    print(f'{b["shapes"]:12s} m={b["m"]:<3d} floor {b["floorMs"]:.4f} cublas {b["cublasMs"]:.4f} | base {ms[0]:.4f} ({pct(ms[0]):.0f}%, {xb(ms[0]):.2f}x) | '
          f'best {names[best]} {ms[best]:.4f} ({pct(ms[best]):.0f}%, {xb(ms[best]):.2f}x cuBLAS, {ms[0]/ms[best]:.3f}x base){note}')
    print("   x base: " + " ".join(f"{names[i]} {ms[0]/ms[i]:.3f}" for i in range(1, len(ms))))
print("\nlayers (us): base -> best variant (x base)   [m = 1 | m = 16 | m = 32]")
rows = {}
for c in d["layers"]:
    rows.setdefault((c["k"], c["n"]), {})[c["m"]] = c
for (k, n), per_m in rows.items():
    parts = []
    for m in sorted(per_m):
        ms = per_m[m]["ms"]; best = min(range(len(ms)), key=lambda i: ms[i])
        parts.append(f"{ms[0]*1e3:6.1f} -> {names[best]:>9s} {ms[best]*1e3:6.1f} ({ms[0]/ms[best]:.2f})")
    print(f"{k:6d}x{n:<6d} " + " | ".join(parts))
EOF
echo "== done in $(elapsed)s; logs: $(ls "$OUT" | tr '\n' ' ')"
