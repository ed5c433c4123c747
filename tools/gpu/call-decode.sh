#!/usr/bin/env bash
# One device call for the bounded decode-attention grid and the dense kernel's parallel
# split-column sum (issues 12 / 13), time-guarded (GUARD seconds, default 560). PART=kernel: the
# standalone harness built there from this tree and from .carry/native-old.tar.xz (the sources
# before the change: `git archive <commit> native/src | xz > .carry/native-old.tar.xz`), the
# correctness matrix, compute-sanitizer, both harnesses' bench in this call, the decode-attention
# test and bench, the kernel vitest suite. PART=engine: the engine bench (dense and Marlin) with
# the bounded grid and with MARLIN_DECODE_BLOCKS=chunks (the grid before), the engine GPU tests.
# PART=final: every package's vitest suite, the kernel bench with cuBLAS and the reference Marlin
# (.carry/peers: a copy of ../shared/peers, built there), the engine bench, the harness bench.
# PART=kernel2: the swapped m <= 8 tile: correctness, sanitizers, bench before / after / 2 blocks per SM / TN=4.
# PART=final1 / final2: session 6's correctness call (suites, harness, sanitizers) and benchmark call
# (engine with Hugging Face, kernel with cuBLAS and the reference).
# PART=swap: the swapped m <= 8 tile's two experiments of session 7: run sums scaled late in fp32
# (MARLIN_LATE_SCALE, a build flag: the harness built with it on and off) and 256-row stages
# (MARLIN_TK=16): harness quick with each default, sanitizers, bench of the four combinations, ncu
# instruction counts.
# PART=final3: session 7's closing call: the kernel and engine GPU suites, harness quick and
# sanitizers, m = 1 sweeps with 256- and 128-row swapped stages, the kernel bench with cuBLAS and the
# reference (m = 1, 4, 8, 16), the engine decode bench (dense and Marlin).
# PART=final4: session 8's closing call: kernel suite, engine GPU tests, kernel bench with cuBLAS and
# the reference (m = KB_MS, default 1, 16, 32, 64, 128), engine decode bench.
# PART=wgab: engine decode with MARLIN_WG=0 and the default, the kernel bench at m = 64 / 128, the
# core / format / sparse / gptq GPU suites.
# PART=suites: the engine and gptq vitest suites.
# PART=attn: bench/decode-attention.mjs over the grids in ATTN_BLOCKS, and its test.
# PART=final5: session 10's closing call (the decode attention's kvReady read, the 2:4 kernel's
# new defaults, the engine with dense, Marlin and 2:4).
# PART=verify: the engine GPU tests twice and their memcheck, the Marlin decode bench.
# PART=stages: session 11's decode attention K/V ring (see the branch); PART=stagesA: its first
# device call, with the 2:4 kernel's parallel split-k (no model carried: the engine GPU tests wait for call B,
# PART=stagesB, which also runs the sparse suite and bench and the engine with 2:4).
# PART=s13a / s13m / s13b: session 13's calls (2:4 split-k A/B, the output-nest fold, the ring repeat;
# see each part); s13b also runs the sharded GPU runner's test (test_tp). PART=tp1: that test alone
# and its memcheck (two ranks on one GPU, host-staged).
# Every log is packed into $OUT/logs.tgz after each step (steps.sh).
#   run(carry=[".carry"], command="bash tools/gpu/on-device.sh sh 'PART=kernel bash tools/gpu/call-decode.sh'")
part=${PART:-kernel}
source "$(dirname "$0")/steps.sh"  # t0, guard (GUARD, default 560 s), left, step
vitest="node $PWD/node_modules/vitest/vitest.mjs run"
# Background builds (wait for them): the standalone harness as /tmp/h-NAME from ROOT (this tree, or
# /tmp/old for .carry/native-old.tar.xz) with optional HARNESS_FLAGS, and the reference Marlin from
# .carry/peers; each logs to $OUT and ends its log with its exit status.
build_harness() {  # NAME ROOT [HARNESS_FLAGS]
  local name=$1 root=$2 flags=${3:-} obj=/tmp/obj-new
  [ "$root" = . ] || obj=/tmp/obj-old
  (OBJ_ROOT=$obj MARLIN_CUDA_ARCHS=90 HARNESS_FLAGS="$flags" bash "$root/native/src/kernel/marlin/standalone/build.sh" "/tmp/h-$name" > "$OUT/build-$name.log" 2>&1
   echo "$name rc=$?" >> "$OUT/build-$name.log") &
}
build_sparse() {  # NAME ROOT [HARNESS_FLAGS]: the 2:4 harness as /tmp/sp-NAME from ROOT
  (MARLIN_CUDA_ARCHS=90 HARNESS_FLAGS="${3:-}" bash "$2/native/src/sparse/standalone/build.sh" "/tmp/sp-$1" > "$OUT/build-sp-$1.log" 2>&1
   echo "sp-$1 rc=$?" >> "$OUT/build-sp-$1.log") &
}
# The engine's GPU tests, and its decode bench with 2:4 weights under split-k form FORM (KINDS
# default sparse24), as steps.
test_engine() { step test-engine 130 bash -c "cd packages/engine && $vitest test/gpu.test.ts test/decode-attention.gpu.test.ts"; }
# the sharded GPU runner, two ranks on this one GPU (host-staged communicator), against tp = 1
test_tp() { step test-tp-gpu 150 bash -c "cd packages/engine && $vitest test/tp-gpu.gpu.test.ts test/tp-nccl.gpu.test.ts"; }
engine_sp() {  # NAME FORM [KINDS]
  step "$1" 60 bash -c "cd packages/engine && MARLIN_SPARSE24_SPLITK=$2 node bench/run.mjs --kinds ${3:-sparse24} --sections decode"
}
build_reference() {  # [MAX_JOBS]
  rm -rf /tmp/peers && cp -r .carry/peers /tmp/peers
  (cd /tmp/peers/marlin-reference && TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=${1:-16} python3 setup.py build_ext --inplace > "$OUT/reference-build.log" 2>&1
   echo "reference build rc=$?" >> "$OUT/reference-build.log") &
}
if [ "$part" = kernel ]; then
  mkdir -p /tmp/old && tar -xJf .carry/native-old.tar.xz -C /tmp/old
  build_harness new .
  build_harness old /tmp/old
  step test-decode-attention 60 bash -c "cd packages/engine && $vitest test/decode-attention.gpu.test.ts"
  step bench-decode-attention 90 bash -c "cd packages/engine && node bench/decode-attention.mjs && cp ../../bench/results/decode-attention.json $OUT/"
  wait
  tail -1 "$OUT/build-new.log"; tail -1 "$OUT/build-old.log"
  step harness-quick 120 /tmp/h-new quick
  step bench-old 80 env BENCH_MS=${BENCH_MS:-1,8,16,32} /tmp/h-old bench
  step bench-new 80 env BENCH_MS=${BENCH_MS:-1,8,16,32} /tmp/h-new bench
  step memcheck 50 compute-sanitizer --tool memcheck /tmp/h-new sanitize
  step racecheck 60 compute-sanitizer --tool racecheck /tmp/h-new sanitize
  step test-kernel 90 bash -c "cd packages/kernel && $vitest test/marlin.gpu.test.ts"
elif [ "$part" = final ]; then
  # The reference Marlin builds in the background (~1 min) while the test suites run.
  build_reference
  build_harness new .
  for pkg in core format kernel sparse gptq engine; do
    step test-$pkg 150 bash -c "cd packages/$pkg && $vitest"
  done
  wait
  tail -n1 "$OUT/reference-build.log"
  step kernel-bench 170 bash -c "cd packages/kernel && node bench/run.mjs --m ${KB_MS:-1,8,16,32,64,128,1024} --reference /tmp/peers && cp ../../bench/results/kernel-bench.json $OUT/"
  step engine-bench 150 bash -c "cd packages/engine && node bench/run.mjs --kinds dense,marlin --sections ${EB_SECTIONS:-decode,split,contexts,prefill,offline} && cp ../../bench/results/engine-bench.json $OUT/"
  step harness-bench 40 env BENCH_MS=1,8,16,32,64 /tmp/h-new bench
elif [ "$part" = kernel2 ]; then
  mkdir -p /tmp/old && tar -xJf .carry/native-old.tar.xz -C /tmp/old
  build_harness new .
  build_harness swap2 . -DMARLIN_SWAP_MIN_BLOCKS=2
  build_harness old /tmp/old
  wait
  tail -qn1 "$OUT"/build-*.log
  step harness-quick 120 /tmp/h-new quick
  step memcheck 50 compute-sanitizer --tool memcheck /tmp/h-new sanitize
  step racecheck 60 compute-sanitizer --tool racecheck /tmp/h-new sanitize
  ms=${BENCH_MS:-1,2,4,8,16}
  step bench-old 80 env BENCH_MS=$ms /tmp/h-old bench
  step bench-new 80 env BENCH_MS=$ms /tmp/h-new bench
  step bench-swap2 80 env BENCH_MS=$ms /tmp/h-swap2 bench
  step bench-new-tn4 80 env BENCH_MS=$ms MARLIN_TN=4 /tmp/h-new bench
  step test-kernel 90 bash -c "cd packages/kernel && $vitest test/marlin.gpu.test.ts"
elif [ "$part" = final1 ]; then
  # Correctness of the session-6 tree: every vitest suite, the harness matrix and sanitizers, the
  # engine's fused-op memcheck, the decode-attention bench.
  build_harness new .
  for pkg in core format kernel sparse gptq engine; do
    step test-$pkg 150 bash -c "cd packages/$pkg && $vitest"
  done
  wait
  tail -qn1 "$OUT"/build-*.log
  step harness-quick 120 /tmp/h-new quick
  step memcheck 50 compute-sanitizer --tool memcheck /tmp/h-new sanitize
  step racecheck 60 compute-sanitizer --tool racecheck /tmp/h-new sanitize
  step memcheck-attn 90 bash -c "cd packages/engine && compute-sanitizer --tool memcheck node $PWD/node_modules/vitest/vitest.mjs run test/decode-attention.gpu.test.ts test/gpu.test.ts -t 'attention|norm|decode'"
  step bench-decode-attention 60 bash -c "cd packages/engine && node bench/decode-attention.mjs --blocks default && cp ../../bench/results/decode-attention.json $OUT/"
elif [ "$part" = final2 ]; then
  # The benchmarks: kernel (cuBLAS, the reference Marlin, ours), engine (dense, Marlin, Hugging Face).
  build_reference
  step test-engine 90 bash -c "cd packages/engine && $vitest test/decode-attention.gpu.test.ts test/gpu.test.ts"
  step engine-bench 190 bash -c "cd packages/engine && node bench/run.mjs --kinds dense,marlin --sections ${EB_SECTIONS:-decode,split,contexts,prefill,offline} && cp ../../bench/results/engine-bench.json $OUT/"
  wait
  tail -n1 "$OUT/reference-build.log"
  step kernel-bench 200 bash -c "cd packages/kernel && node bench/run.mjs --m ${KB_MS:-1,8,16,32,64,128,1024} --reference /tmp/peers && cp ../../bench/results/kernel-bench.json $OUT/"
  step hf-peer 150 python3 /tmp/peers/hf_decode_peer.py
elif [ "$part" = swap ]; then
  build_harness late1 .
  build_harness late0 . -DMARLIN_LATE_SCALE=0
  wait
  tail -qn1 "$OUT"/build-*.log
  ms=${BENCH_MS:-1,4,8}
  for h in late0 late1; do
    step bench-$h 60 env BENCH_MS=$ms /tmp/h-$h bench
    step bench-$h-tk16 60 env BENCH_MS=$ms MARLIN_TK=16 /tmp/h-$h bench
  done
  step quick-late1 120 /tmp/h-late1 quick
  step quick-late1-tk16 120 env MARLIN_TK=16 /tmp/h-late1 quick
  step memcheck 50 env MARLIN_TK=16 compute-sanitizer --tool memcheck /tmp/h-late1 sanitize
  step racecheck 60 env MARLIN_TK=16 compute-sanitizer --tool racecheck /tmp/h-late1 sanitize
  step racecheck-tk8 60 compute-sanitizer --tool racecheck /tmp/h-late1 sanitize
  ncu_swap() {
    local m="gpu__time_duration.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,smsp__issue_active.avg.pct_of_peak_sustained_active,smsp__inst_executed.sum,launch__registers_per_thread,launch__grid_size"
    for h in late0 late1; do for tk in 0 16; do for s in "4096 4096" "16384 65536"; do
      echo "== $h tk=$tk $s"
      MARLIN_TK=$tk ncu --metrics "$m" -k regex:Marlin --launch-skip 20 --launch-count 1 /tmp/h-$h one $s 1 2>&1 | grep -E 'MarlinKernel|duration|dram__|issue_active|inst_executed|registers|grid_size'
    done; done; done
  }
  export -f ncu_swap
  step ncu 120 bash -c ncu_swap
elif [ "$part" = final3 ]; then
  build_reference 8
  build_harness new .
  step test-kernel 120 bash -c "cd packages/kernel && $vitest"
  step test-engine 150 bash -c "cd packages/engine && $vitest test/gpu.test.ts"
  wait
  tail -qn1 "$OUT"/build-new.log "$OUT"/reference-build.log
  step harness-quick 90 /tmp/h-new quick
  step memcheck 40 compute-sanitizer --tool memcheck /tmp/h-new sanitize
  step racecheck 50 compute-sanitizer --tool racecheck /tmp/h-new sanitize
  step sweep-tk16 30 /tmp/h-new sweep 1
  step sweep-tk8 30 env MARLIN_TK=8 /tmp/h-new sweep 1
  step kernel-bench 150 bash -c "cd packages/kernel && node bench/run.mjs --m ${KB_MS:-1,4,8,16} --reference /tmp/peers && cp ../../bench/results/kernel-bench.json $OUT/"
  step engine-bench 100 bash -c "cd packages/engine && node bench/run.mjs --kinds dense,marlin --sections decode,split && cp ../../bench/results/engine-bench.json $OUT/"
elif [ "$part" = final4 ]; then
  # Session 8's closing call: the kernel suite and the engine GPU tests with the wgmma tile in the
  # tree, the kernel bench with cuBLAS and the reference (KB_MS), the engine decode bench.
  build_reference 8
  step test-kernel 120 bash -c "cd packages/kernel && $vitest"
  step test-engine 150 bash -c "cd packages/engine && $vitest test/gpu.test.ts"
  wait
  tail -qn1 "$OUT"/reference-build.log
  step kernel-bench 200 bash -c "cd packages/kernel && node bench/run.mjs --m ${KB_MS:-1,16,32,64,128} --reference /tmp/peers && cp ../../bench/results/kernel-bench.json $OUT/"
  step engine-bench 120 bash -c "cd packages/engine && node bench/run.mjs --kinds dense,marlin --sections decode,split && cp ../../bench/results/engine-bench.json $OUT/"
elif [ "$part" = wgab ]; then
  # The engine's decode with the wgmma tile off and on (batch 64 was slower in final4), the registry's
  # m = 128 pick, and the GPU suites of core, format, sparse and gptq at this tree.
  step engine-wg0 90 bash -c "cd packages/engine && MARLIN_WG=0 node bench/run.mjs --kinds marlin --sections decode"
  step engine-auto 90 bash -c "cd packages/engine && node bench/run.mjs --kinds marlin --sections decode"
  step kernel-bench-128 90 bash -c "cd packages/kernel && node bench/run.mjs --m 64,128 && cp ../../bench/results/kernel-bench.json $OUT/kernel-bench-128.json"
  for pkg in core format sparse gptq; do
    step test-$pkg 120 bash -c "cd packages/$pkg && $vitest"
  done
elif [ "$part" = final5 ]; then
  # Session 10's closing call: the decode attention's kvReady read (engine tests, memcheck, decode
  # bench with MARLIN_KV_READY=0 and the default, twice, interleaved), the 2:4 kernel's new defaults
  # (harness matrix, vtest, sanitizers, bench; the sparse suite; the sparse bench against dense
  # Marlin), the engine decode bench with dense, Marlin and 2:4 in one run.
  (bash native/src/sparse/standalone/build.sh /tmp/sp-h > "$OUT/build-sparse.log" 2>&1; echo "sparse harness rc=$?" >> "$OUT/build-sparse.log") &
  step test-engine 150 bash -c "cd packages/engine && $vitest test/gpu.test.ts test/decode-attention.gpu.test.ts"
  eb() {  # NAME ENV... : the Marlin decode and split sections under those switches
    local name=$1; shift
    step engine-$name 70 env "$@" bash -c "cd packages/engine && node bench/run.mjs --kinds marlin --sections decode,split --split-batches 1,16"
  }
  eb kv0 MARLIN_KV_READY=0
  eb kv1 MARLIN_KV_READY=1
  eb kv0-b MARLIN_KV_READY=0
  eb kv1-b MARLIN_KV_READY=1
  eb chunk64 MARLIN_DECODE_CHUNK=64
  step memcheck-engine 120 bash -c "cd packages/engine && compute-sanitizer --tool memcheck node $PWD/node_modules/vitest/vitest.mjs run test/decode-attention.gpu.test.ts test/gpu.test.ts -t 'attention|norm|decode'"
  wait
  tail -n1 "$OUT/build-sparse.log"
  step sparse-quick 120 /tmp/sp-h test quick
  step sparse-vtest 80 /tmp/sp-h vtest
  step sparse-memcheck 60 compute-sanitizer --tool memcheck /tmp/sp-h sanitize
  step sparse-racecheck 80 compute-sanitizer --tool racecheck /tmp/sp-h sanitize
  step sparse-hbench 60 /tmp/sp-h bench ${HBENCH_MS:-1,16,32}
  step test-sparse 90 bash -c "cd packages/sparse && $vitest"
  step sparse-bench 150 bash -c "cd packages/sparse && node bench/run.mjs --m 1,16,32,64 --shapes llama2-7b,llama3-70b,16384x65536 && cp ../../bench/results/sparse-bench.json $OUT/"
  step engine-all 150 bash -c "cd packages/engine && node bench/run.mjs --kinds dense,marlin,sparse24 --sections decode,split --split-batches 1,16,64 && cp ../../bench/results/engine-bench.json $OUT/"
elif [ "$part" = verify ]; then
  # The engine GPU tests (twice: fresh seeds) and the memcheck of the fused ops, after a fix.
  step test-engine 150 bash -c "cd packages/engine && $vitest test/gpu.test.ts test/decode-attention.gpu.test.ts"
  step test-attn-2 90 bash -c "cd packages/engine && $vitest test/decode-attention.gpu.test.ts"
  step memcheck-engine 120 bash -c "cd packages/engine && compute-sanitizer --tool memcheck node $PWD/node_modules/vitest/vitest.mjs run test/decode-attention.gpu.test.ts test/gpu.test.ts -t 'attention|norm|decode'"
  step engine-marlin 60 bash -c "cd packages/engine && node bench/run.mjs --kinds marlin --sections decode,split --split-batches 1,16"
elif [ "$part" = stages ]; then
  # Session 11: the decode attention's cp.async K/V ring (stages 0 = direct loads, 2, 3, 4), after
  # verifying the RoPE fix: the op's test (every load path bit-identical), its bench per stage count,
  # the engine A/B (dense + Marlin at the default, Marlin with MARLIN_DECODE_STAGES=0 / 4), the
  # engine GPU tests and the memcheck of the fused ops.
  step test-attn 90 bash -c "cd packages/engine && $vitest test/decode-attention.gpu.test.ts"
  step bench-attn 90 bash -c "cd packages/engine && node bench/decode-attention.mjs --blocks default --stages 0,2,3,4 && cp ../../bench/results/decode-attention.json $OUT/"
  step engine-default 100 bash -c "cd packages/engine && node bench/run.mjs --kinds dense,marlin --sections decode,split --split-batches 1,16,64 && cp ../../bench/results/engine-bench.json $OUT/"
  step engine-s0 50 bash -c "cd packages/engine && MARLIN_DECODE_STAGES=0 node bench/run.mjs --kinds marlin --sections decode,split --split-batches 1,64"
  step engine-s4 50 bash -c "cd packages/engine && MARLIN_DECODE_STAGES=4 node bench/run.mjs --kinds marlin --sections decode,split --split-batches 1,64"
  step engine-s0-again 50 bash -c "cd packages/engine && MARLIN_DECODE_STAGES=0 node bench/run.mjs --kinds marlin --sections decode,split --split-batches 1,64"
  step test-engine 120 bash -c "cd packages/engine && $vitest test/gpu.test.ts"
  step test-attn-2 60 bash -c "cd packages/engine && $vitest test/decode-attention.gpu.test.ts"
  step memcheck-engine 100 bash -c "cd packages/engine && compute-sanitizer --tool memcheck node $PWD/node_modules/vitest/vitest.mjs run test/decode-attention.gpu.test.ts"
elif [ "$part" = stagesA ] || [ "$part" = stagesS ]; then
  # Session 11, call A: the decode attention's K/V ring (PART=stages' first half) and the 2:4
  # kernel's parallel split-k (harness built there with -DSPARSE24_PARALLEL_SPLITK=1 and =0).
  # PART=stagesS: the same cut short (no dense engine run, no memcheck, one A/B round).
  short=0; [ "$part" = stagesS ] && short=1
  build_sparse par . -DSPARSE24_PARALLEL_SPLITK=1
  build_sparse ser . -DSPARSE24_PARALLEL_SPLITK=0
  step test-attn 90 bash -c "cd packages/engine && $vitest test/decode-attention.gpu.test.ts"
  step bench-attn 90 bash -c "cd packages/engine && node bench/decode-attention.mjs --blocks default --stages 0,2,3,4 && cp ../../bench/results/decode-attention.json $OUT/"
  kinds=dense,marlin; [ "$short" = 1 ] && kinds=marlin
  step engine-default 100 bash -c "cd packages/engine && node bench/run.mjs --kinds $kinds --sections decode,split --split-batches 1,16,64 && cp ../../bench/results/engine-bench.json $OUT/"
  wait
  tail -n1 "$OUT/build-sp-par.log" "$OUT/build-sp-ser.log"
  step sp-quick 70 /tmp/sp-par test quick
  [ "$short" = 1 ] || step sp-memcheck 45 compute-sanitizer --tool memcheck /tmp/sp-par sanitize
  step sp-bench-ser 40 env BENCH_DEFAULT_ONLY=1 /tmp/sp-ser bench 1,16,32
  step sp-bench-par 40 env BENCH_DEFAULT_ONLY=1 /tmp/sp-par bench 1,16,32
  step engine-s3 50 bash -c "cd packages/engine && MARLIN_DECODE_STAGES=3 node bench/run.mjs --kinds marlin --sections decode,split --split-batches 1,64"
  if [ "$short" = 0 ]; then
    step engine-s4 50 bash -c "cd packages/engine && MARLIN_DECODE_STAGES=4 node bench/run.mjs --kinds marlin --sections decode,split --split-batches 1,64"
    step sp-bench-ser2 40 env BENCH_DEFAULT_ONLY=1 /tmp/sp-ser bench 1,16,32
    step sp-bench-par2 40 env BENCH_DEFAULT_ONLY=1 /tmp/sp-par bench 1,16,32
  fi
elif [ "$part" = stagesB ]; then
  # Session 11, call B (model carried): the engine GPU tests, the sparse suite, the memcheck of the
  # decode attention's test, the 2:4 bench against dense Marlin, the engine with dense, Marlin, 2:4.
  step test-engine 120 bash -c "cd packages/engine && $vitest test/gpu.test.ts test/decode-attention.gpu.test.ts"
  step test-sparse 90 bash -c "cd packages/sparse && $vitest"
  step memcheck-attn 90 bash -c "cd packages/engine && compute-sanitizer --tool memcheck node $PWD/node_modules/vitest/vitest.mjs run test/decode-attention.gpu.test.ts"
  step sparse-bench 90 bash -c "cd packages/sparse && node bench/run.mjs --m 1,16,32 && cp ../../bench/results/sparse-bench.json $OUT/"
  step engine-3 150 bash -c "cd packages/engine && node bench/run.mjs --kinds dense,marlin,sparse24 --sections decode,split --split-batches 1,16 && cp ../../bench/results/engine-bench.json $OUT/"
elif [ "$part" = s13a ]; then
  # Session 13, call A (model carried): the 2:4 split-k forms (MARLIN_SPARSE24_SPLITK=serial /
  # parallel, one harness) and the output-nest fold of branch fold-sparse-out (.carry/fold-kernel.cuh,
  # a second harness): quick tests, memcheck, bench A/B twice in alternating order; the engine GPU
  # tests; the engine with 2:4 weights under both split-k forms; the engine decode with the K/V ring
  # at 3 and 0 stages.
  rm -rf /tmp/fold && mkdir -p /tmp/fold/native && cp -r native/src /tmp/fold/native/ && cp .carry/fold-kernel.cuh /tmp/fold/native/src/sparse/kernel.cuh
  build_sparse main .
  build_sparse fold /tmp/fold
  # SHORT=1 (a call with little device time left): the harness builds alone, the engine tests last.
  [ "${SHORT:-0}" = 1 ] || test_engine
  wait
  tail -qn1 "$OUT"/build-sp-*.log
  # In order of need (the guard drops what does not fit): the parallel form's correctness, the
  # harness A/B, its memcheck, the engine A/B, the fold's correctness, the ring repeat.
  step sp-quick-par 70 env MARLIN_SPARSE24_SPLITK=parallel /tmp/sp-main test quick
  for r in 1 2; do
    order="main:serial main:parallel fold:serial"; [ $r = 2 ] && order="fold:serial main:parallel main:serial"
    for hf in $order; do
      step sp-bench-${hf%%:*}-${hf##*:}-$r 35 env BENCH_DEFAULT_ONLY=1 MARLIN_SPARSE24_SPLITK=${hf##*:} /tmp/sp-${hf%%:*} bench 1,16,32
    done
  done
  step sp-memcheck-par 45 env MARLIN_SPARSE24_SPLITK=parallel compute-sanitizer --tool memcheck /tmp/sp-main sanitize
  for f in serial parallel; do engine_sp engine-sp-$f $f; done
  step sp-quick-fold 70 /tmp/sp-fold test quick
  [ "${SHORT:-0}" = 1 ] && test_engine
  for st in 3 0; do
    step engine-s$st 45 bash -c "cd packages/engine && MARLIN_DECODE_STAGES=$st node bench/run.mjs --kinds marlin --sections decode"
  done
elif [ "$part" = s13m ]; then
  # Session 13, the little device time left: the engine with 2:4 weights under both split-k forms
  # (MARLIN_SPARSE24_SPLITK, a run-time switch: no build), alternating, then the 2:4 GPU tests.
  i=0
  for fk in serial:marlin,sparse24 parallel:marlin,sparse24 parallel:sparse24 serial:sparse24; do
    i=$((i + 1))
    engine_sp engine-sp-$i-${fk%%:*} ${fk%%:*} ${fk##*:}  # the run's number in the name: no log overwrites another
  done
  step test-sparse-par 60 bash -c "cd packages/sparse && MARLIN_SPARSE24_SPLITK=parallel $vitest test/sparse24.gpu.test.ts"
elif [ "$part" = s13b ]; then
  # Session 13, call B (model carried): the sparse suite, the memcheck of the decode attention's
  # test, the 2:4 bench against dense Marlin, the engine with dense, Marlin and 2:4 (SPLITK: the
  # 2:4 split-k form for both sparse runs, default the build's).
  step test-sparse 90 bash -c "cd packages/sparse && $vitest"
  step sparse-bench 100 bash -c "cd packages/sparse && node bench/run.mjs --m 1,16,32 && cp ../../bench/results/sparse-bench.json $OUT/"
  step engine-3 170 bash -c "cd packages/engine && node bench/run.mjs --kinds dense,marlin,sparse24 --sections decode,split --split-batches 1,16 && cp ../../bench/results/engine-bench.json $OUT/"
  step memcheck-attn 90 bash -c "cd packages/engine && compute-sanitizer --tool memcheck node $PWD/node_modules/vitest/vitest.mjs run test/decode-attention.gpu.test.ts"
  test_tp
elif [ "$part" = tp1 ]; then
  # Session 14: the sharded GPU runner on this one GPU (two ranks, host-staged), its memcheck.
  test_tp
  step tp-engine-shared 120 bash -c "cd packages/engine && node bench/tp-engine.mjs --shape 7b --layers 4 --tp 1,2 --batches 1,16 --steps 16 --shared"
  step memcheck-tp 240 bash -c "cd packages/engine && compute-sanitizer --tool memcheck node $PWD/node_modules/vitest/vitest.mjs run test/tp-gpu.gpu.test.ts -t 'host-staged, fp16'"
elif [ "$part" = suites ]; then
  step test-engine ${T_ENGINE:-150} bash -c "cd packages/engine && $vitest"
  step test-gptq ${T_GPTQ:-100} bash -c "cd packages/gptq && $vitest"
elif [ "$part" = attn ]; then
  step bench-attn 90 bash -c "cd packages/engine && node bench/decode-attention.mjs --blocks ${ATTN_BLOCKS:-chunks,default,1,2,4,8,16} && cp ../../bench/results/decode-attention.json $OUT/"
  step test-decode-attention 60 bash -c "cd packages/engine && $vitest test/decode-attention.gpu.test.ts"
else
  build_harness new .
  step test-decode-attention 60 bash -c "cd packages/engine && $vitest test/decode-attention.gpu.test.ts"
  step bench-decode-attention 90 bash -c "cd packages/engine && node bench/decode-attention.mjs && cp ../../bench/results/decode-attention.json $OUT/"
  wait
  # ncu on the 7B block's layers at m = 1 (one launch each, after warm-up launches).
  ncu_layers() {
    local m="gpu__time_duration.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,sm__throughput.avg.pct_of_peak_sustained_elapsed,sm__warps_active.avg.pct_of_peak_sustained_active,sm__cycles_active.avg,gpc__cycles_elapsed.max,launch__grid_size,launch__registers_per_thread,launch__occupancy_limit_shared_mem"
    for s in "4096 12288" "4096 4096" "4096 22016" "11008 4096" "16384 65536"; do
      ncu --metrics "$m" -k regex:Marlin --launch-skip 20 --launch-count 1 /tmp/h-new one $s 1 2>&1 | grep -E 'one k=|Marlin|duration|throughput|warps_active|cycles|grid_size|registers|occupancy'
    done
  }
  export -f ncu_layers
  step ncu 90 bash -c ncu_layers
  step engine-new 100 bash -c "cd packages/engine && node bench/run.mjs --sections decode,split,contexts --kinds dense,marlin && cp ../../bench/results/engine-bench.json $OUT/engine-new.json"
  step engine-old 100 bash -c "cd packages/engine && MARLIN_DECODE_BLOCKS=chunks node bench/run.mjs --sections decode,contexts --kinds dense,marlin && cp ../../bench/results/engine-bench.json $OUT/engine-old.json"
  step test-engine 150 bash -c "cd packages/engine && $vitest test/gpu.test.ts test/decode-attention.gpu.test.ts"
fi
echo "== $(( $(date +%s) - t0 )) s"
snapshot; ls -la "$OUT_REAL"
