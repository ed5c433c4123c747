#!/usr/bin/env bash
# Tensor-parallel check on a machine of several GPUs (issue 18; nvidia-h200-x2 or larger). Run
# through on-device.sh, which unpacks the carried node and built tree (tools/gpu/prepare.sh
# --with-model carries tiny-llama for the tests):
#
#   run(kind="nvidia-h200-x4", carry=[".carry"], command="bash tools/gpu/on-device.sh sh 'bash tools/gpu/tp.sh'")
#
# 1. the NCCL and tensor-parallel tests (test/tp-*.test.ts: NCCL all-reduce / all-gather across every
#    GPU, the sharded GPU runner at tp = 2 against tp = 1 on tiny-llama (two ranks on one GPU through
#    the host-staged communicator, then one rank per GPU over NCCL), and the CPU-communicator checks);
# 2. packages/engine/bench/tp.mjs for each shape: the sharded part of a decode step (every layer's
#    4-bit Marlin linears, the o_proj and down_proj all-reduces, lm_head and the logits all-gather)
#    at batch 1 and 16, tp = 1, 2, 4 (as many as there are GPUs), ms/step and the collectives' share.
# NVLink SHARP stays off (NCCL_NVLS_ENABLE=0): multicast objects are not lent on these machines.
# Knobs: SHAPES [7b,70b]  TP [1,2,4]  BATCHES [1,16]  LAYERS [4]  ITERS [20]
# To $OUT: tp.log (everything printed), tp-test.log, tp-engine-7b.json, tp-engine-70b.json.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
exec > >(tee "$OUT/tp.log") 2>&1
export NCCL_NVLS_ENABLE=0
# reproducible sums: the same ring and protocol every run
export NCCL_ALGO=${NCCL_ALGO:-Ring} NCCL_PROTO=${NCCL_PROTO:-Simple}
SHAPES=${SHAPES:-7b,70b}
TP=${TP:-1,2,4}
BATCHES=${BATCHES:-1,16}
LAYERS=${LAYERS:-4}
ITERS=${ITERS:-20}
t0=$(date +%s)
phase() { echo "== [$(($(date +%s) - t0)) s] $*"; }

phase "$(date -u +%FT%TZ) commit ${MARLIN_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null)}; NCCL_NVLS_ENABLE=$NCCL_NVLS_ENABLE NCCL_ALGO=$NCCL_ALGO NCCL_PROTO=$NCCL_PROTO"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader && nvidia-smi topo -m
ls -l /usr/lib/x86_64-linux-gnu/libnccl.so.2* 2>/dev/null

phase "tests: tp-*.test.ts"
(cd packages/engine && timeout 900 node "$root/node_modules/vitest/vitest.mjs" run --reporter=verbose test/tp-nccl.gpu.test.ts test/tp-gpu.gpu.test.ts test/tp-communicator.test.ts test/tp-shard.test.ts test/tp-engine.test.ts) > "$OUT/tp-test.log" 2>&1
rc=$?
grep -E "✓|✗|×|skipped|Tests|FAIL|perplexity" "$OUT/tp-test.log" | tail -40

IFS=, read -ra shapes <<< "$SHAPES"
for shape in "${shapes[@]}"; do
  phase "bench: decode step, shape $shape, tp $TP, batches $BATCHES"
  (cd packages/engine && timeout 900 node bench/tp.mjs --device cuda --shape "$shape" --tp "$TP" --batches "$BATCHES" --layers "$LAYERS" --iters "$ITERS") || rc=1
done
# 3. the whole engine (LLM.load at each tp: GpuTpRunner, NCCL, CUDA graphs): decode ms/step at batch
#    1 and 16 on random Marlin checkpoints (the 70B shape cut to ENGINE_70B_LAYERS layers: disk and load time)
phase "engine: bench/tp-engine.mjs, 7b and 70b (${ENGINE_70B_LAYERS:=20} layers)"
(cd packages/engine && timeout 900 node bench/tp-engine.mjs --shape 7b --tp "$TP" --batches "$BATCHES" && cp ../../bench/results/tp-engine-7b.json "$OUT/") || rc=1
(cd packages/engine && timeout 900 node bench/tp-engine.mjs --shape 70b --layers "$ENGINE_70B_LAYERS" --tp "$TP" --batches "$BATCHES" && cp ../../bench/results/tp-engine-70b.json "$OUT/") || rc=1
phase "done (rc $rc)"
exit $rc
